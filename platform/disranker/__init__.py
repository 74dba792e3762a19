"""disranker: distil a large language model ranker into a BERT cross-encoder on Ray (DisRanker, arXiv 2411.04539)."""

__version__ = "0.1.0"
