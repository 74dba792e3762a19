"""Which runtime a replica serves: the torch student, or a faster runtime of it once checked against torch.

``load_scorer`` loads the torch student, and for any other ``runtime`` builds that runtime's scorer
(``onnx_runtime.build``, ``openvino_runtime.build``), scores the check set (``agreement.check_set``) with both and
compares them (``agreement.check_agreement``). When the Spearman correlation or the mean top-10 agreement is below
the configured floor (``RankerArgs.check``), or the runtime's package is missing, or its export fails, the replica
serves torch; either way the outcome, the numbers and the reason are in ``scorer.runtime`` (shown by /info) and in the
replica's log.
"""

from __future__ import annotations

import importlib
import logging

from disranker.models.text import pair_texts
from disranker.serving.config import RankerArgs
from disranker.serving.scorer import PairScorer, TorchScorer

logger = logging.getLogger(__name__)

# runtime → the module whose ``build(torch_scorer, args)`` makes its scorer (imported only when asked for), and the
# optional extra it needs.
BUILDERS = {
    "onnx-int8": ("disranker.serving.onnx_runtime", "onnx"),
    "openvino": ("disranker.serving.openvino_runtime", "openvino"),
    "openvino-int8": ("disranker.serving.openvino_runtime", "openvino"),
}


def load_scorer(args: RankerArgs) -> PairScorer:
    """The replica's scorer for ``args.runtime`` (module docstring)."""
    scorer = TorchScorer.load(args)
    if args.runtime == "torch":
        return scorer
    return load_checked_scorer(scorer, args)


def load_checked_scorer(torch_scorer: TorchScorer, args: RankerArgs) -> PairScorer:
    """``args.runtime``'s scorer when it passes the check, else ``torch_scorer`` (with the reason in its
    ``runtime``)."""
    from disranker.serving.agreement import TOP_K, check_agreement, check_set

    floors = {"spearman": args.check.min_spearman, f"top{TOP_K}_agreement": args.check.min_top10_agreement}
    report: dict = {"requested": args.runtime, "active": None, "reason": None, "thresholds": floors}
    module, extra = BUILDERS[args.runtime]
    try:
        candidate, details = importlib.import_module(module).build(torch_scorer, args)
    except ImportError as exc:
        return _fall_back(torch_scorer, report, f"{exc}: install the extra with `pip install 'disranker[{extra}]'`")
    except Exception as exc:  # an architecture the exporter or converter cannot handle: torch still serves it
        logger.exception("building the %s runtime of %s failed", args.runtime, torch_scorer.model_id)
        return _fall_back(torch_scorer, report, f"export failed: {type(exc).__name__}: {exc}")
    report.update(details)

    pairs, source = check_set(args, torch_scorer.lineage)
    texts = pair_texts(pairs)
    agreement = check_agreement(torch_scorer.score(*texts), candidate.score(*texts), pairs["query_id"].to_numpy())
    # NaN (a constant score, or no query with two documents) becomes null: JSON has no NaN, and /info shows this.
    report["check"] = {"source": source, **{k: None if v != v else v for k, v in agreement.items()}}
    # `not >=` rather than `<`, so a NaN (constant scores) fails too.
    failed = [
        f"{name} {agreement[name]:.4f} < {floor}" for name, floor in floors.items() if not agreement[name] >= floor
    ]
    if failed:
        reason = f"{args.runtime} ranks unlike torch on the check set: " + ", ".join(failed)
        return _fall_back(torch_scorer, report, reason)
    logger.info("serving %s (%s): %s", args.runtime, details, agreement)
    candidate.runtime = {**report, "active": args.runtime, "reason": None}
    return candidate


def _fall_back(scorer: PairScorer, report: dict, reason: str) -> PairScorer:
    logger.warning("serving the torch student instead of %s: %s", report["requested"], reason)
    scorer.runtime = {**report, "active": "torch", "reason": reason}
    return scorer
