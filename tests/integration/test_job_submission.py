"""A stage job submitted to a running Ray cluster exactly as on a real one: ``ray start --head`` + the job SDK.

The job ships the repository as its ``working_dir`` and the package through ``runtime_env.py_modules`` (the path of
``ray job submit --runtime-env-json '{"py_modules": ["platform/disranker"]}'``), so the driver and the labeling actors
import disranker from the uploaded copy, not from this checkout's editable install.

Kept apart from every other test's ``ray.init()``: the head has its own ``--temp-dir`` (``ray.init()`` looks for a
running cluster in the default one only) and its own free ports, the auth token travels in the head's environment and
the SDK's headers (Ray 2.60 turns token auth on: docs/operations.md), no RAY_* variable is set in this process, and
teardown SIGKILLs the processes of this head alone (``ray stop`` would stop every Ray on the machine).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from disranker import lineage
from disranker.data import io
from disranker.testing.tiny import build_tiny_scorer

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

ROOT = Path(__file__).resolve().parents[2]
ROWS = 24
JOB_TIMEOUT_S = 240  # the job took ~43 s on this 2-core machine; room for a loaded CI runner
# Never uploaded (Ray also skips what .gitignore lists). Ray applies `excludes` to py_modules too, relative to each
# module's folder: "/data/" here would drop disranker/data from the package.
EXCLUDES = ["/.venv/", "/outputs/", "__pycache__/", ".pytest_cache/"]


def _free_ports(n: int) -> list[int]:
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def _pids_under(temp_dir: str) -> list[int]:
    """This head's processes: those whose command line names its private temp dir (every Ray daemon and worker)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if temp_dir in (entry / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return pids


def _kill_head(temp_dir: str) -> None:
    # GCS and raylet ignore SIGTERM sent by PID (docs/operations.md); workers die with their raylet, but sweep them too.
    for _ in range(20):
        pids = _pids_under(temp_dir)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)


LEAK_KEYS = ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_MODE")
ENV_BEFORE_HEAD: dict[str, str | None] = {}  # filled by the ray_head fixture


@pytest.fixture(scope="module")
def ray_head():
    """A 2-CPU ``ray start --head`` on 127.0.0.1 with token auth; yields (dashboard URL, token)."""
    ENV_BEFORE_HEAD.update({k: os.environ.get(k) for k in LEAK_KEYS})
    temp_dir = tempfile.mkdtemp(prefix="rayjob-", dir="/tmp")  # short: Ray's socket paths live below it
    token = secrets.token_hex(32)
    gcs, dashboard, client, agent_http, agent_grpc, metrics, runtime_env, node_manager, object_manager = _free_ports(9)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=token,  # read by every daemon, by the job driver and by its workers
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",  # `python` in entrypoints: this venv
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    # fmt: off
    command = [
        str(Path(sys.executable).parent / "ray"), "start", "--head",
        f"--port={gcs}", "--node-ip-address=127.0.0.1", "--num-cpus=2", "--num-gpus=0",
        "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
        f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent_http}",
        f"--dashboard-agent-grpc-port={agent_grpc}", f"--metrics-export-port={metrics}",
        f"--runtime-env-agent-port={runtime_env}", f"--node-manager-port={node_manager}",
        f"--object-manager-port={object_manager}", f"--object-store-memory={300 * 1024**2}",
        f"--temp-dir={temp_dir}", "--disable-usage-stats",
    ]
    # fmt: on
    try:
        started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
        assert started.returncode == 0, f"ray start failed:\n{started.stdout}\n{started.stderr}"
        yield f"http://127.0.0.1:{dashboard}", token
    finally:
        _kill_head(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def pool(tmp_path) -> str:
    rows = [
        {
            "query_id": f"q{i // 6}",
            "query": f"query number {i // 6} about cats",
            "doc_id": f"d{i}",
            "title": f"title {i}",
            "summary": "a short summary " * (1 + i % 4),
        }
        for i in range(ROWS)
    ]
    path = tmp_path / "pool.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


def _wait(client, job_id: str, timeout_s: float):
    from ray.job_submission import JobStatus

    deadline = time.monotonic() + timeout_s
    while (status := client.get_job_status(job_id)) not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
        if time.monotonic() > deadline:
            client.stop_job(job_id)
            break
        time.sleep(1)
    return status


def test_label_job_runs_on_a_cluster_from_working_dir_and_py_modules(ray_head, pool, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    address, token = ray_head
    client = JobSubmissionClient(address, headers={"Authorization": f"Bearer {token}"})
    output_dir = tmp_path / "label"
    build_tiny_scorer(tmp_path / "teacher")
    # Absolute paths: the entrypoint runs in the job's copy of the working_dir, which is deleted with the cluster.
    overrides = f"pool={pool} teacher.spec={tmp_path / 'teacher'} output_dir={output_dir} rows_per_shard=12"
    overrides += " scaling.num_workers=1"  # one scoring actor: two double the worker start-up on 2 CPUs
    job_id = client.submit_job(
        entrypoint=(
            "python -c \"import disranker; print('disranker from', disranker.__file__)\" && "
            f"python -m jobs.label --config jobs/configs/label_smoke.yaml {overrides}"
        ),
        runtime_env={
            "working_dir": str(ROOT),
            "excludes": EXCLUDES,
            "py_modules": [str(ROOT / "platform" / "disranker")],
        },
    )

    status = _wait(client, job_id, JOB_TIMEOUT_S)
    logs = client.get_job_logs(job_id)
    assert status == JobStatus.SUCCEEDED, f"job {job_id} ended {status}; its logs:\n{logs}"

    imported_from = next(line for line in logs.splitlines() if line.startswith("disranker from "))
    assert str(ROOT) not in imported_from, f"the job imported this checkout, not the py_modules copy: {imported_from}"
    assert "labels:" in logs
    record = lineage.read_lineage(str(output_dir))
    assert record["stage"] == "label" and record["metrics"]["summary"]
    labels = io.read_table(str(output_dir / "labels"))
    assert labels.num_rows == ROWS
    assert sorted(labels["doc_id"].to_pylist()) == sorted(f"d{i}" for i in range(ROWS))


def test_no_ray_address_leaks_into_this_process(ray_head):
    # The head's address and token go only to its own processes. Compared with what this process had before the head
    # started, not with nothing: an earlier test's ray.init() may have set RAY_AUTH_MODE here already.
    assert {k: os.environ.get(k) for k in LEAK_KEYS} == ENV_BEFORE_HEAD
