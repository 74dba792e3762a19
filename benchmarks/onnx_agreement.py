"""The student in ONNX Runtime (float32 and int8) against torch: do they rank alike, and how fast is each?

For each ``--model``, scores the first ``--queries`` queries of a judgments table (all their documents) with the
torch student (``serving.scorer.TorchScorer``, what ``runtime: torch`` serves), the exported float32 graph and its
int8 version (``models.onnx_export``, what ``runtime: onnx-int8`` serves), then prints and writes to ``--out``:

- agreement with torch (``serving.agreement.check_agreement``: Pearson, Spearman over all pairs and within a
  query, mean top-10 agreement, largest score difference) and whether the int8 graph passes the serving check at
  the default floors (Spearman >= 0.99, top-10 agreement >= 0.9);
- NDCG@10 and PNR on the table's labels for each runtime;
- pairs/s of each at ``--threads`` threads, batch ``--batch-size``: the runtimes take turns for ``--repeats`` rounds
  after a warm-up and the best round counts (this machine is shared; the load average is recorded beside);
- the size of each graph, and the export + quantisation time when this run did it (0 when it came from the cache).

    python benchmarks/onnx_agreement.py                         # packaged:minilm, 100 demo test queries
    python benchmarks/onnx_agreement.py --model packaged:minilm outputs/demo/distill --queries 50
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from disranker.data import io
from disranker.evaluation.metrics import evaluate_rankings
from disranker.models.onnx_export import FLOAT_FILE, int8_student, open_session, score_pairs_onnx
from disranker.models.text import pair_texts
from disranker.serving.agreement import TOP_K, check_agreement, first_queries
from disranker.serving.config import RankerArgs, RuntimeCheckArgs
from disranker.serving.scorer import TorchScorer

RESULTS = Path(__file__).parent / "results" / "onnx_agreement.json"
WARMUP_PAIRS = 64


def bench_model(spec: str, table, args: argparse.Namespace) -> dict:
    ranker = RankerArgs(
        model=spec, max_length=args.max_length, torch_threads=args.threads, forward_batch_size=args.batch_size
    )
    torch_scorer = TorchScorer.load(ranker)
    started = time.perf_counter()
    int8_path = int8_student(torch_scorer.model, torch_scorer.tokenizer, name=spec.replace(":", "-").split("/")[-1])
    export_s = time.perf_counter() - started
    tokenizer = torch_scorer.tokenizer
    paths = {"onnx-fp32": int8_path.parent / FLOAT_FILE, "onnx-int8": int8_path}
    sessions = {name: open_session(path, args.threads) for name, path in paths.items()}
    runtimes = {
        "torch": torch_scorer.score,
        **{
            name: (lambda *texts, s=session: score_pairs_onnx(s, tokenizer, *texts, args.batch_size, args.max_length))
            for name, session in sessions.items()
        },
    }
    texts = pair_texts(table)
    query_ids, labels = table["query_id"].to_numpy(), table["label"].to_numpy()

    scores, best_s = {}, {name: float("inf") for name in runtimes}
    for score in runtimes.values():
        score(*(column[:WARMUP_PAIRS] for column in texts))
    for _ in range(args.repeats):  # turns, so a burst of load from other jobs hits every runtime alike
        for name, score in runtimes.items():
            start = time.perf_counter()
            scores[name] = score(*texts)
            best_s[name] = min(best_s[name], time.perf_counter() - start)

    floors = RuntimeCheckArgs()
    rows = {}
    for name in runtimes:
        quality = evaluate_rankings(query_ids, labels, scores[name])
        row = {
            "pairs_per_s": len(query_ids) / best_s[name],
            "ndcg@10": quality["ndcg@10"],
            "pnr": quality["pnr"],
        }
        if name != "torch":
            agreement = check_agreement(scores["torch"], scores[name], query_ids)
            row["agreement"] = agreement
            row["passes_default_check"] = bool(
                agreement["spearman"] >= floors.min_spearman
                and agreement[f"top{TOP_K}_agreement"] >= floors.min_top10_agreement
            )
            row["file_mb"] = os.path.getsize(paths[name]) / 2**20
        rows[name] = row
    return {
        "model": spec,
        "model_id": torch_scorer.model_id,
        "score_std_torch": float(np.std(scores["torch"])),
        "export_s": export_s,
        "onnx_file": str(int8_path),
        "runtimes": rows,
    }


def print_table(result: dict) -> None:
    print(f"\n{result['model']} ({result['model_id']}), torch score std {result['score_std_torch']:.4f}")
    header = f"{'runtime':<10} {'pairs/s':>8} {'vs torch':>8} {'pearson':>8} {'spearman':>8} {'sp/query':>8}"
    print(header + f" {'top10':>6} {'max|d|':>7} {'ndcg@10':>8} {'pnr':>6} {'MB':>6} {'check':>6}")
    base = result["runtimes"]["torch"]["pairs_per_s"]
    for name, row in result["runtimes"].items():
        a = row.get("agreement", {})
        cells = [
            f"{name:<10}",
            f"{row['pairs_per_s']:>8.1f}",
            f"{row['pairs_per_s'] / base:>7.2f}x",
            *(f"{a[k]:>8.4f}" if a else f"{'':>8}" for k in ("pearson", "spearman", "spearman_query_mean")),
            f"{a['top10_agreement']:>6.3f}" if a else f"{'':>6}",
            f"{a['max_abs_diff']:>7.4f}" if a else f"{'':>7}",
            f"{row['ndcg@10']:>8.4f}",
            f"{row['pnr']:>6.3f}",
            f"{row['file_mb']:>6.1f}" if "file_mb" in row else f"{'':>6}",
            ("pass" if row["passes_default_check"] else "FAIL") if "passes_default_check" in row else "",
        ]
        print(" ".join(cells))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", default=["packaged:minilm"], help="student specs")
    parser.add_argument("--test", default="outputs/demo/corpus/judgments/test.parquet", help="judgments table")
    parser.add_argument("--queries", type=int, default=100, help="first N queries of the table, all their documents")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of every runtime")
    parser.add_argument("--batch-size", type=int, default=32, help="pairs per forward pass (length-sorted)")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per runtime; the best counts")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    table = first_queries(io.read_table(args.test), args.queries)
    load_before = os.getloadavg()
    results = []
    for spec in args.model:
        result = bench_model(spec, table, args)
        print_table(result)
        results.append(result)
    print(f"\n{table.num_rows} pairs, {args.queries} queries of {args.test}")
    print(f"load average (1, 5, 15 min) {load_before} before, {os.getloadavg()} after, on {os.cpu_count()} CPUs")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "args": {**vars(args), "out": str(args.out)},
        "pairs": table.num_rows,
        "cpus": os.cpu_count(),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "results": results,
    }
    args.out.write_text(json.dumps(payload, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
