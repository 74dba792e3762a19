"""How the quality study (``quality_study.py``) runs each stage: one ``Study`` that loads a stage's own config file
with the study's overrides into a folder of the work dir and times it, and the overrides every teacher and student
of the study shares (one Ray Train worker each, the study's lengths, precision and seeds)."""

from __future__ import annotations

import time

from disranker.config import load_config
from disranker.data import io
from disranker.pipeline import samples
from disranker.student import train as student_train
from disranker.student.config import DistillConfig
from disranker.teacher import train as teacher_train
from disranker.teacher.config import TeacherConfig

# Every training stage leaves Ray a quarter CPU for the tasks that stream its data (still two torch threads).
ONE_WORKER = ["scaling.num_workers=1", "scaling.cpus_per_worker=1.75"]


def teacher_overrides(args) -> list[str]:
    return [
        f"training.max_length={args.max_length}",
        f"training.precision={args.precision}",
        f"run.checkpoint_every_steps={10**6}",  # epoch-end checkpoints only: each one is ~1.6 GB here
        *ONE_WORKER,
    ]


def student_overrides(args, seed: int, epochs: int) -> list[str]:
    return [
        f"student.max_length={args.student_max_length}",
        f"training.epochs={epochs}",
        f"training.lr={args.student_lr}",
        f"training.group_size={args.group_size}",
        f"training.groups_per_batch={args.groups_per_batch}",
        f"training.seed={seed}",
        f"training.precision={args.precision}",
        *ONE_WORKER,
    ]


class Study:
    def __init__(self, args):
        self.args = args
        self.work = io.absolute(args.work_dir)
        self.seconds: dict[str, float] = {}

    def stage(self, name: str, run, config_class, config_file: str, overrides: list[str]) -> str:
        """One stage run (skipped by its own lineage check when done), timed under ``name``."""
        started = time.perf_counter()
        folder = run(load_config(config_class, config_file, [f"output_dir={self.work}/{name}", *overrides]))
        self.seconds[name] = round(time.perf_counter() - started, 1)
        print(f"{name}: {self.seconds[name]} s", flush=True)
        return folder

    def sample(self, name: str, source: str, n_queries: int | None) -> str:
        return samples.write_sample(source, f"{self.work}/samples/{name}", n_queries, self.args.sample_seed)

    def teacher(self, name: str, spec: str, train: str, dev: str) -> str:
        a = self.args
        overrides = [
            f"model.spec={spec}",
            f"data.train={train}",
            f"data.dev={dev}",
            f"training.epochs={a.sft_epochs}",
            f"training.lr={a.sft_lr}",
            f"training.head_lr={a.head_lr}",
            f"training.rank_loss={a.rank_loss}",
            f"training.group_size={a.group_size}",
            "training.batch_size=2",
            "training.grad_accumulation=1",
            "training.warmup_steps=10",
            *teacher_overrides(a),
        ]
        return self.stage(name, teacher_train.run, TeacherConfig, "jobs/configs/teacher_sft.yaml", overrides)

    def student(self, name: str, mode: str, data: str, dev: str, seed: int, loss: str = "hybrid") -> str:
        source = f"data.labels={data}" if mode == "teacher" else f"data.judgments={data}"
        a = self.args
        # A pool several times the label budget needs fewer passes; each family keeps its best dev epoch.
        epochs = a.distill_epochs if mode == "teacher" and a.distill_epochs else a.student_epochs
        distill = distill_loss_overrides(a) if mode == "teacher" else []
        overrides = [
            f"mode={mode}",
            source,
            *distill,
            f"data.dev={dev}",
            f"loss.name={loss}",
            *student_overrides(a, seed, epochs),
        ]
        return self.stage(name, student_train.run, DistillConfig, "jobs/configs/distill.yaml", overrides)


def distill_loss_overrides(args) -> list[str]:
    return [f"loss.margin_weight={args.margin_weight}", f"loss.normalize={args.normalize}"]


def distill_variant(args) -> str:
    """'' for the distilled students' default loss settings, else what differs (their folders must not collide)."""
    margin = "" if args.margin_weight == 1.0 else f"_mw{args.margin_weight:g}"
    return margin + ("" if args.normalize == "none" else f"_{args.normalize}")


def pool_suffix(args) -> str:
    """'' for the study corpus's own pool, else ``_<size>`` of the pool's corpus (e.g. ``_full``)."""
    if args.pool_corpus == args.corpus:
        return ""
    return "_" + io.read_json(io.join(args.pool_corpus, "stats.json"))["size"]
