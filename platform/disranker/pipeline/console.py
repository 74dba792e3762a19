"""What the main job shows on the terminal: one line when a stage starts and one when it ends, nothing else.

Everything else the stages and their libraries write — Ray's driver messages, the lines Ray forwards from its
workers (training workers, labeling actors, scoring tasks), transformers' load reports, progress bars, warnings —
goes to ``<output_dir>/logs/pipeline.log`` (a local output folder; for a URI, ``./logs/``). A failure names that file
on stderr and the traceback follows as usual. ``console: all`` in the config turns this off.

Why by redirecting ``sys.stdout``/``sys.stderr`` rather than configuring each library: Ray prints forwarded worker
output to whatever ``sys.stdout``/``sys.stderr`` are at the time, and tqdm and ``warnings`` do the same, so one
redirect catches them all; only loggers holding a stream handler made earlier need their level raised. Ray's C++
core writes to file descriptor 2 directly, so that descriptor points at the log file too while the job runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from disranker.data import io

# Loggers that hold their own handler on the real stderr (made at import): it shows only errors while the job runs.
CHATTY_LOGGERS = ("ray", "ray.data", "ray.train", "ray.tune")


class StageConsole:
    """Prints the stage lines to the terminal the job started with."""

    def __init__(self, terminal: TextIO):
        self.terminal = terminal

    def started(self, name: str) -> float:
        print(f"{time.strftime('%H:%M:%S')}  {name} …", file=self.terminal, flush=True)
        return time.perf_counter()

    def finished(self, name: str, started: float, folder: str) -> None:
        seconds = time.perf_counter() - started
        print(f"{time.strftime('%H:%M:%S')}  {name} done in {seconds:.1f} s: {folder}", file=self.terminal, flush=True)


def log_file_for(output_dir: str) -> Path:
    folder = Path(output_dir) / "logs" if "://" not in output_dir else Path("logs")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "pipeline.log"


@contextlib.contextmanager
def stage_console(output_dir: str, quiet: bool) -> Iterator[StageConsole]:
    """A ``StageConsole``; when ``quiet``, everything else written meanwhile goes to the log file."""
    if not quiet:
        yield StageConsole(sys.stdout)
        return
    log_file = log_file_for(io.absolute(output_dir))
    terminal, errors = sys.stdout, sys.stderr
    print(f"logs: {log_file}", file=terminal, flush=True)
    with open(log_file, "a", buffering=1, encoding="utf-8") as log:
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        quieted, detached = _route_loggers(handler, (terminal, errors, sys.__stdout__, sys.__stderr__))
        errors.flush()
        saved_fd2 = os.dup(2)  # Ray's C++ core logs to file descriptor 2 itself, past sys.stderr
        os.dup2(log.fileno(), 2)
        failed = False
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield StageConsole(terminal)
        except BaseException:
            failed = True
            raise
        finally:
            os.dup2(saved_fd2, 2)
            os.close(saved_fd2)
            for console_handler, level in quieted:
                console_handler.setLevel(level)
            for logger in detached:
                logger.removeHandler(handler)
            _rehome_handlers(log, errors)
            if failed:
                print(f"the main job failed; the full log: {log_file}", file=errors, flush=True)


def _rehome_handlers(log: TextIO, errors: TextIO) -> None:
    """Handlers made meanwhile on the redirected stderr (Ray's, at ``ray.init``) would write to a closed file."""
    named = (v for v in logging.root.manager.loggerDict.values() if isinstance(v, logging.Logger))
    loggers = [logging.getLogger(), *named]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is log:
                handler.setStream(errors)
                handler.setLevel(max(handler.level, logging.ERROR))


def _route_loggers(handler: logging.Handler, terminals: tuple) -> tuple[list, list]:
    """Send log records to ``handler``; raise the terminal handlers that loggers made earlier to ERROR."""
    quieted, attached = [], [logging.getLogger()]
    logging.getLogger().addHandler(handler)
    for name in CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        for existing in logger.handlers:
            if isinstance(existing, logging.StreamHandler) and existing.stream in terminals:
                quieted.append((existing, existing.level))
                existing.setLevel(logging.ERROR)
        if not logger.propagate:  # its records never reach the root's handler
            logger.addHandler(handler)
            attached.append(logger)
    return quieted, attached
