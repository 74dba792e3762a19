"""The main job's quiet terminal: stage lines only; everything else (prints, stderr, library logs) in the log file."""

from __future__ import annotations

import logging
import os
import re
import sys

import pytest

from disranker.pipeline.console import stage_console


@pytest.fixture
def ray_data_logger():
    """``ray.data`` as Ray sets it up at import: INFO, its own stderr handler, not propagating."""
    logger = logging.getLogger("ray.data")
    console = logging.StreamHandler(sys.stderr)
    logger.addHandler(console)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, console
    logger.removeHandler(console)
    logger.setLevel(logging.NOTSET)
    logger.propagate = True


def test_quiet_console_shows_stage_lines_and_logs_the_rest(tmp_path, capsys, ray_data_logger):
    logger, console_handler = ray_data_logger
    with stage_console(str(tmp_path), quiet=True) as console:
        started = console.started("teacher_cpt")
        print("(RayTrainWorker pid=1) Loading weights: 100%")
        sys.stderr.write("a forwarded worker warning\n")
        os.write(2, b"core_worker.cc: a C++ log line\n")
        logger.info("Running Dataset")
        console.finished("teacher_cpt", started, "/out/teacher_cpt")
    shown = capsys.readouterr()
    lines = shown.out.splitlines()
    assert lines[0] == f"logs: {tmp_path / 'logs' / 'pipeline.log'}"
    assert re.fullmatch(r"\d\d:\d\d:\d\d  teacher_cpt …", lines[1])
    assert re.fullmatch(r"\d\d:\d\d:\d\d  teacher_cpt done in \d+\.\d s: /out/teacher_cpt", lines[2])
    assert len(lines) == 3 and shown.err == ""
    logged = (tmp_path / "logs" / "pipeline.log").read_text()
    assert "Loading weights: 100%" in logged and "a forwarded worker warning" in logged and "C++ log line" in logged
    assert "ray.data INFO Running Dataset" in logged
    streams = [h for h in logger.handlers if type(h) is logging.StreamHandler]
    assert console_handler.level == logging.NOTSET and streams == [console_handler]  # restored afterwards


def test_a_failure_names_the_log_file_on_stderr(tmp_path, capsys):
    with pytest.raises(RuntimeError, match="labeling broke"):
        with stage_console(str(tmp_path), quiet=True):
            print("what led up to it")
            raise RuntimeError("labeling broke")
    assert capsys.readouterr().err == f"the main job failed; the full log: {tmp_path / 'logs' / 'pipeline.log'}\n"
    assert "what led up to it" in (tmp_path / "logs" / "pipeline.log").read_text()


def test_console_all_leaves_the_terminal_alone(tmp_path, capsys):
    with stage_console(str(tmp_path), quiet=False):
        print("shown as it comes")
    assert capsys.readouterr().out == "shown as it comes\n" and not (tmp_path / "logs").exists()


def test_a_handler_made_while_quiet_writes_to_stderr_afterwards(tmp_path, capsys):
    logger = logging.getLogger("disranker.test.late")
    with stage_console(str(tmp_path), quiet=True):
        late = logging.StreamHandler(sys.stderr)  # as ray.init makes one inside the first Ray stage
        logger.addHandler(late)
    try:
        logger.error("after the job")
        assert capsys.readouterr().err.endswith("after the job\n") and late.level == logging.ERROR
    finally:
        logger.removeHandler(late)
