"""The BERT cross-encoder student: its distillation objectives (``losses``)."""
