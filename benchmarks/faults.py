"""Faults injected into a running platform, with figures: what is lost, what is answered, how fast it recovers.

(a) ``overload``: /rank (one replica of ``--model``) offered 10× the requests per second it sustains, open loop, for
    ``--overload-s`` seconds: answered, 503s (with Retry-After), other 5xx (must be 0), p99 of the answered.
(b) ``replica_kill``: steady load on one replica; the replica's actor is killed: failed requests and the seconds until
    requests are answered again.
(c) ``labeling``: the tiny demo pool (800 pairs) labeled by a tiny teacher three ways: a scoring actor killed (the
    stage's ``FaultInjection(crash_scorer_once=…)``), the driver SIGKILLed after its first shard and rerun, and a scorer
    that fails transiently (the first call raises, row by row too; a backend subclass defined here): rows lost and
    rows duplicated after the rerun, which must both be 0.
(d) ``teacher_kill``: tiny-teacher SFT with rank 0 failing after a step (``FaultInjection``) vs the same run
    uninterrupted: the step it resumed from and the largest weight difference of the two exports.

    python benchmarks/faults.py                    # ~10 min on 2 cores; benchmarks/results/faults.json
    python benchmarks/faults.py --parts serving    # rerun one part; the file keeps the others' last figures
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from disranker.config import load_config
from disranker.data import demo, io
from disranker.faults import FaultInjection
from disranker.labeling import LabelConfig
from disranker.labeling import pipeline as labeling
from disranker.labeling.backends import TransformersScorer
from disranker.testing.tiny import build_tiny_scorer
from fault_load import overload, replica_kill  # benchmarks/ is the script's folder, first on sys.path
from process_peak import kill_tree

REPO = Path(__file__).resolve().parents[1]


class FlakyScorer(TransformersScorer):
    """Fails every score call of the first batch any actor receives (a marker file makes it happen once)."""

    marker = ""

    def __call__(self, batch):
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return super().__call__(batch)
        self.score = _raise  # this call only: the batch and its row-by-row retry both fail
        try:
            return super().__call__(batch)
        finally:
            del self.score


def _raise(*_args, **_kwargs):
    raise RuntimeError("transient scorer failure (injected)")


def label_overrides(pool: str, teacher: str, out: Path) -> list[str]:
    return [f"pool={pool}", f"teacher.spec={teacher}", f"output_dir={out}", "rows_per_shard=100",
            "scoring.rows_per_call=50", "scoring.precision=fp32", "max_rejected_fraction=1.0",
            "scaling.num_workers=2", "scaling.cpus_per_worker=0.5"]  # fmt: skip


def exactly_once(pool: str, out: Path) -> dict:
    """Every pool row in exactly one of labels/ and rejected/: labels are matched to pool rows by their key (the
    first valid row of a key, as the stage keeps it), rejected rows carry their pool row."""
    table = io.read_table(pool)
    row_of: dict[tuple, int] = {}
    for row, key in enumerate(zip(table["query_id"].to_pylist(), table["doc_id"].to_pylist(), strict=True)):
        row_of.setdefault(key, row)
    labels, rejected = io.read_table(out / "labels"), io.read_table(out / "rejected")
    keys = zip(labels["query_id"].to_pylist(), labels["doc_id"].to_pylist(), strict=True)
    seen = sorted([row_of[key] for key in keys] + rejected["row"].to_pylist())
    counts = np.bincount(seen, minlength=table.num_rows)
    scorer = sum(reason.startswith("teacher") for reason in rejected["reason"].to_pylist())
    lost, duplicated = int((counts == 0).sum()), int((counts > 1).sum())
    return {"rows": table.num_rows, "lost": lost, "duplicated": duplicated, "scorer_rejected": scorer,
            "exactly_once": lost == duplicated == 0}  # fmt: skip


def labeling_faults(work: Path) -> dict:
    import ray

    corpus = demo.run(demo.DemoCorpusConfig(size="tiny", output_dir=str(work / "corpus")))
    pool, teacher = io.join(corpus, "pool.parquet"), build_tiny_scorer(work / "teacher")
    results = {}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        crash = FaultInjection(crash_scorer_once=str(work / "actor-crashed"))
        labeling.run(load_config(LabelConfig, overrides=label_overrides(pool, teacher, work / "actor_kill")), crash)
        results["actor_killed"] = {
            "injected": (work / "actor-crashed").exists(),
            **exactly_once(pool, work / "actor_kill"),
        }

        FlakyScorer.marker = str(work / "flaky-fired")
        labeling.BACKENDS["transformers"] = FlakyScorer
        out = work / "transient"
        labeling.run(load_config(LabelConfig, overrides=label_overrides(pool, teacher, out)))
        first = exactly_once(pool, out)
        labeling.BACKENDS["transformers"] = TransformersScorer
        labeling.run(load_config(LabelConfig, overrides=label_overrides(pool, teacher, out)))
        results["transient_scorer"] = {"first_run": first, "after_rerun": exactly_once(pool, out)}
    finally:
        ray.shutdown()

    out = work / "driver_kill"
    command = [sys.executable, "-m", "jobs.label", "--config", "jobs/configs/label_smoke.yaml",
               *label_overrides(pool, teacher, out)]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    while not list((out / "labels").glob("[!.]*.parquet")) and process.poll() is None:  # not the .tmp- files
        time.sleep(0.2)
    written = len(list((out / "labels").glob("[!.]*.parquet")))
    kill_tree(process)  # its Ray too, not another job's
    rerun = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    if rerun.returncode:
        raise RuntimeError(f"the labeling rerun failed:\n{rerun.stderr[-3000:]}")
    record = io.read_json(out / "disranker.json")["metrics"]
    results["driver_killed"] = {"shards_before_kill": written, "shards_skipped_on_rerun": record["shards_skipped"],
                                **exactly_once(pool, out)}  # fmt: skip
    return results


def teacher_kill(work: Path) -> dict:
    """Tiny-teacher SFT, uninterrupted and killed after step 6 (checkpoint every 4), same seed."""
    from disranker.models.loading import load_teacher_scorer
    from disranker.teacher import train as teacher_train
    from disranker.teacher.config import TeacherConfig
    from disranker.testing.smoke import build_smoke_inputs, teacher_overrides

    inputs = build_smoke_inputs(work / "smoke")
    runs = {}
    for name, fault in (("uninterrupted", None), ("killed", FaultInjection(after_step=6))):
        config = load_config(TeacherConfig, "jobs/configs/teacher_sft_smoke.yaml", [
            f"output_dir={work / name}", *teacher_overrides(inputs),
            "training.epochs=3", "run.checkpoint_every_steps=4", "run.max_failures=1",
        ])  # fmt: skip
        runs[name] = teacher_train.run(config, fault)
    weights = {name: load_teacher_scorer(folder)[0].state_dict() for name, folder in runs.items()}
    diff = max(float((weights["killed"][k] - v).abs().max()) for k, v in weights["uninterrupted"].items())
    metrics = {name: io.read_json(Path(folder) / "disranker.json")["metrics"] for name, folder in runs.items()}
    losses = {name: [point["loss"] for point in m["loss_curve"]] for name, m in metrics.items()}
    return {
        "resumed_from_step": metrics["killed"]["resumed_from_steps"][0],
        "steps": metrics["killed"]["step"],
        "max_abs_weight_diff": diff,
        "same_losses": bool(np.allclose(losses["killed"], losses["uninterrupted"])),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="packaged:minilm", help="the served student")
    parser.add_argument("--docs", type=int, default=20, help="documents per /rank request")
    parser.add_argument("--overload-s", type=float, default=30.0)
    parser.add_argument("--parts", nargs="+", default=["serving", "labeling", "teacher"])
    parser.add_argument("--out", default="benchmarks/results/faults.json")
    args = parser.parse_args(argv)
    out = Path(args.out)
    report: dict = json.loads(out.read_text()) if out.exists() else {}  # parts not rerun keep their last figures
    command = "python benchmarks/faults.py " + " ".join(argv or sys.argv[1:])
    report["commands"] = {**report.get("commands", {}), **dict.fromkeys(args.parts, command)}
    report["loadavg"] = {**report.get("loadavg", {}), **dict.fromkeys(args.parts, os.getloadavg()[0])}
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        work = Path(tmp)
        if "serving" in args.parts:
            report["overload"] = overload(args.model, args.docs, args.overload_s)
            report["replica_kill"] = replica_kill(args.model, args.docs)
        if "labeling" in args.parts:
            report["labeling"] = labeling_faults(work)
        if "teacher" in args.parts:
            report["teacher_kill"] = teacher_kill(work)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
