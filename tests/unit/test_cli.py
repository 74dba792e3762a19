"""The ``disranker`` command line through typer's CliRunner, on small tables written by each test.

Typer's runner (the click ≥ 8.2 one, vendored) always keeps stderr apart in ``result.stderr`` and has no
``mix_stderr``, so stdout can be parsed as JSON while the rejected-row report is checked on stderr.
"""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from disranker.cli import app

# Wide and colourless help, so option names and messages come out whole whatever the caller's terminal.
runner = CliRunner(env={"COLUMNS": "200", "TERMINAL_WIDTH": "200", "FORCE_COLOR": None, "NO_COLOR": "1"})

JUDGED = [
    ("q1", "solar panel", "d1", "Solar panel", "A solar panel in winter.", 2),
    ("q1", "solar panel", "d2", "", "A chocolate cake recipe.", 0),
    ("q1", "solar panel", "d3", "Wind", "Turbines and a panel of engineers.", 1),
    ("q2", "chocolate cake", "d2", "", "A chocolate cake recipe.", 3),
    ("q2", "chocolate cake", "d1", "Solar panel", "A solar panel in winter.", 0),
    ("q2", "chocolate cake", "d4", "Cocoa", "Dark cocoa for cake.", 1),
]
BAD_JUDGMENT = ("q2", "chocolate cake", "d5", "Bad", "Label out of range.", 9)  # row 6, nobody scores it
SCORED = [
    ("q1", "d1", 0.9),
    ("q1", "d2", 0.1),
    ("q1", "d3", 0.5),
    ("q2", "d2", 0.8),
    ("q2", "d1", 0.2),
    ("q2", "d4", 0.4),
]

COMMAND_OPTIONS = {
    ("evaluate",): ["--config", "--judgments", "--scores", "--out", "--model", "--mrr-min-label", "overrides"],
    ("score",): ["--config", "--model", "--input", "--out", "--kind", "--batch-size", "overrides"],
    ("pipeline",): ["--config", "--size", "overrides"],
    ("distill",): ["--config", "overrides"],
    ("compare",): ["--config", "overrides"],
    ("evaluate-models",): ["--config", "overrides"],  # compare's old name, hidden from --help for its last release
    ("serve",): ["--config", "overrides"],
    ("train-teacher",): ["--config", "--stage", "--out", "overrides"],
    ("label",): ["--config", "--pool", "--teacher", "--out", "--backend", "--relabel", "overrides"],
    ("data", "build-demo"): ["--config", "--size", "--out", "--seed", "overrides"],
    ("data", "build-smoke-inputs"): ["--out"],
    ("data", "fetch-wordnet"): ["--help"],
    ("data", "wordnet-path"): ["--help"],
    ("data", "validate"): ["--table", "--input", "--out"],
    ("data", "import-msmarco"): ["--collection", "--queries", "--qrels", "--out", "--run"],
    ("data", "import-beir"): ["--folder", "--out", "--split"],
    ("data", "export-trec"): ["--scores", "--out", "--run-name"],
    ("baseline", "bm25"): ["--judgments", "--out"],
    ("baseline", "random"): ["--judgments", "--out", "--seed"],
}


def write_judgments(path, rows=JUDGED):
    columns = ["query_id", "query", "doc_id", "title", "summary", "label"]
    pq.write_table(pa.table({name: [row[i] for row in rows] for i, name in enumerate(columns)}), path)
    return str(path)


def write_scores(path, rows=SCORED, model="m"):
    table = pa.table(
        {
            "query_id": [q for q, _, _ in rows],
            "doc_id": [d for _, d, _ in rows],
            "score": pa.array([s for _, _, s in rows], pa.float32()),
            "model": [model] * len(rows),
        }
    )
    pq.write_table(table, path)
    return str(path)


def leaf_commands(command, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    if hasattr(command, "commands"):  # a group (typer vendors its own click, so no isinstance on click.Group)
        return set().union(*(leaf_commands(sub, (*path, name)) for name, sub in command.commands.items()))
    return {path}


def test_every_command_is_covered_by_the_help_checks():
    assert leaf_commands(typer.main.get_command(app)) == set(COMMAND_OPTIONS)


def test_top_level_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("evaluate", "pipeline", "data", "baseline"):
        assert name in result.stdout


def test_evaluate_models_is_a_hidden_deprecated_alias_of_compare(monkeypatch, tmp_path):
    from disranker.evaluation import compare

    seen = []
    (tmp_path / "metrics.json").write_text(json.dumps({"bm25": {"pnr": 1.0}}))
    monkeypatch.setattr(compare, "run", lambda config: seen.append(config) or str(tmp_path))
    args = ["judgments=j.parquet", "models=[{name: bm25, kind: bm25}]"]
    old, new = runner.invoke(app, ["evaluate-models", *args]), runner.invoke(app, ["compare", *args])
    assert old.exit_code == new.exit_code == 0, old.output
    assert old.stderr == "disranker evaluate-models is deprecated and goes in the next release: use disranker compare\n"
    assert old.stdout == new.stdout and new.stderr == "" and seen[0] == seen[1]  # then exactly what compare does
    assert "evaluate-models" not in runner.invoke(app, ["--help"]).stdout


@pytest.mark.parametrize(
    ("group", "commands"),
    [
        ("data", ["build-demo", "fetch-wordnet", "wordnet-path", "validate", "import-msmarco", "import-beir",
                  "export-trec"]),
        ("baseline", ["bm25", "random"]),
    ],
)  # fmt: skip
def test_group_help_lists_its_commands(group, commands):
    result = runner.invoke(app, [group, "--help"])
    assert result.exit_code == 0
    for name in commands:
        assert name in result.stdout


@pytest.mark.parametrize("command", sorted(COMMAND_OPTIONS), ids=" ".join)
def test_command_help_exits_0_and_mentions_its_options(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    for option in COMMAND_OPTIONS[command]:
        assert option in result.stdout


def test_pipeline_refuses_size_with_config_before_running_anything(monkeypatch):
    from disranker import pipeline

    monkeypatch.setattr(pipeline, "run", lambda config: pytest.fail("the pipeline must not start"))
    result = runner.invoke(app, ["pipeline", "--size", "tiny", "--config", "jobs/configs/demo.yaml"])
    assert result.exit_code == 2
    assert "give --config or --size, not both" in result.stderr
    result = runner.invoke(app, ["pipeline", "--size", "huge"])
    assert result.exit_code == 2 and "--size 'huge': expected one of tiny, demo" in result.stderr


def test_pipeline_size_loads_the_named_config(monkeypatch):
    from disranker import pipeline

    class Finished:
        def summary(self) -> str:
            return "the table"

    from disranker.testing import smoke

    seen, built = [], []
    monkeypatch.setattr(pipeline, "run", lambda config: seen.append(config) or Finished())
    monkeypatch.setattr(smoke, "build_smoke_inputs", lambda: built.append("outputs/smoke"))
    result = runner.invoke(app, ["pipeline", "--size", "tiny", "output_dir=/tmp/x"])
    assert result.exit_code == 0 and result.stdout == "the table\n"
    assert [(c.corpus.size, c.output_dir) for c in seen] == [("tiny", "/tmp/x")]  # pipeline_smoke.yaml + override
    assert built == ["outputs/smoke"]  # the tiny models its stage files start from, made first


def test_evaluate_prints_metrics_reports_the_bad_row_and_writes_it(tmp_path):
    judgments = write_judgments(tmp_path / "j.parquet", [*JUDGED, BAD_JUDGMENT])
    scores = write_scores(tmp_path / "s.parquet")
    out = tmp_path / "eval"

    result = runner.invoke(app, ["evaluate", "--judgments", judgments, "--scores", scores, "--out", str(out)])

    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert set(metrics) == {
        "model", "pnr", "pnr_query_mean", "pairwise_accuracy", "ndcg@1", "ndcg@5", "ndcg@10", "mrr@10",
        "n_queries", "n_preference_pairs", "n_ties", "n_rejected",
    }  # fmt: skip
    # q1 ranks d1(2) d3(1) d2(0): 3 concordant; q2 ranks d2(3) d4(1) d1(0): 3 concordant.
    assert (metrics["model"], metrics["n_queries"], metrics["n_preference_pairs"], metrics["pnr"]) == ("m", 2, 6, 6.0)
    assert metrics["n_rejected"] == 1
    assert result.stderr == (
        f"1 rows could not be evaluated (see {out}/rejected.parquet):\n  judgments row 6: label: 9 is outside 0–4\n"
    )
    rejected = pq.read_table(out / "rejected.parquet")
    assert rejected.select(["table", "row", "reason"]).to_pylist() == [
        {"table": "judgments", "row": 6, "reason": "label: 9 is outside 0–4"}
    ]
    assert json.loads(rejected["record"][0].as_py())["doc_id"] == "d5"
    assert sorted(p.name for p in out.iterdir()) == ["disranker.json", "m.run", "metrics.json", "rejected.parquet"]


def test_evaluate_with_a_config_file_overrides_and_shortcuts(tmp_path):
    judgments = write_judgments(tmp_path / "j.parquet")
    scores = write_scores(tmp_path / "s.parquet")
    config = tmp_path / "evaluate.yaml"
    config.write_text(f"judgments: {judgments}\nscores: /nowhere.parquet\nmrr_min_label: 1\n")

    # mrr_min_label=3: q1's first label ≥ 3 is absent, q2's d2 is at rank 1.
    result = runner.invoke(app, ["evaluate", "--config", str(config), "mrr_min_label=4", "--scores", scores,
                                 "--mrr-min-label", "3"])  # fmt: skip

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["mrr@10"] == 0.5
    assert result.stderr == ""


def test_evaluate_out_with_a_hash_in_its_name_is_taken_whole(tmp_path):
    judgments = write_judgments(tmp_path / "j.parquet")
    scores = write_scores(tmp_path / "s.parquet")
    out = tmp_path / "run #2"
    result = runner.invoke(app, ["evaluate", "--judgments", judgments, "--scores", scores, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "metrics.json").is_file()


def test_evaluate_bad_override_exits_nonzero_naming_the_key(tmp_path):
    judgments = write_judgments(tmp_path / "j.parquet")
    scores = write_scores(tmp_path / "s.parquet")
    result = runner.invoke(app, ["evaluate", "nope=1", "--judgments", judgments, "--scores", scores])
    assert result.exit_code == 2
    assert "unknown key 'nope' in EvaluateConfig" in " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stderr).split())
    assert result.stdout == ""


def test_evaluate_without_scores_exits_nonzero_naming_the_key(tmp_path):
    result = runner.invoke(app, ["evaluate", "--judgments", write_judgments(tmp_path / "j.parquet")])
    assert result.exit_code == 2
    assert "'scores' is required" in result.stderr


@pytest.mark.parametrize(("command", "model"), [(["bm25"], "bm25"), (["random", "--seed", "3"], "random")])
def test_baseline_writes_one_score_per_judgment(tmp_path, command, model):
    judgments = write_judgments(tmp_path / "j.parquet")
    out = tmp_path / "scores" / f"{model}.parquet"

    result = runner.invoke(app, ["baseline", *command, "--judgments", judgments, "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert result.stdout == f"6 scores written to {out}\n"
    scores = pq.read_table(out)
    assert scores.column_names == ["query_id", "doc_id", "score", "model"]
    assert list(zip(scores["query_id"].to_pylist(), scores["doc_id"].to_pylist(), strict=True)) == [
        (q, d) for q, _, d, *_ in JUDGED
    ]
    assert scores["model"].to_pylist() == [model] * 6


def test_data_validate_splits_valid_and_rejected_rows(tmp_path):
    source = write_judgments(tmp_path / "in.parquet", [*JUDGED, BAD_JUDGMENT])
    out = tmp_path / "checked"

    result = runner.invoke(app, ["data", "validate", "--table", "judgments", "--input", source, "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"in": 7, "valid": 6, "rejected": 1}
    assert pq.read_table(out / "judgments.parquet")["doc_id"].to_pylist() == [d for _, _, d, *_ in JUDGED]
    rejected = pq.read_table(out / "judgments_rejected.parquet")
    assert rejected.select(["row", "reason"]).to_pylist() == [{"row": 6, "reason": "label: 9 is outside 0–4"}]


def test_data_export_trec_writes_a_ranked_run(tmp_path):
    scores = write_scores(tmp_path / "s.parquet", SCORED[:3])
    out = tmp_path / "bm25.run"
    result = runner.invoke(app, ["data", "export-trec", "--scores", scores, "--out", str(out), "--run-name", "tag"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{out}\n"
    assert out.read_text() == "q1 Q0 d1 1 0.9 tag\nq1 Q0 d3 2 0.5 tag\nq1 Q0 d2 3 0.1 tag\n"


def test_data_import_beir_writes_the_judgments(tmp_path):
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    docs = [{"_id": "d1", "title": "One", "text": "first"}, {"_id": "d2", "text": "second"}]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "1", "text": "query one"}) + "\n")
    # The third pair names a document the corpus lacks: kept as a rejected row, not lost.
    (folder / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\t2\n1\td2\t0\n1\td9\t1\n")
    out = tmp_path / "imported"

    result = runner.invoke(app, ["data", "import-beir", "--folder", str(folder), "--out", str(out), "--split", "dev"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"judgments": {"in": 3, "valid": 2, "rejected": 1}}
    judgments = pq.read_table(out / "judgments.parquet")
    assert judgments.select(["query_id", "doc_id", "title", "label"]).to_pylist() == [
        {"query_id": "1", "doc_id": "d1", "title": "One", "label": 2},
        {"query_id": "1", "doc_id": "d2", "title": "", "label": 0},
    ]
    assert pq.read_table(out / "judgments_rejected.parquet")["reason"].to_pylist() == ["title: missing (null)"]
