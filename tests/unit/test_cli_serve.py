"""``disranker serve`` through typer's CliRunner, without Ray: how a failed start reads, and what a local start sets
up before Serve starts."""

from __future__ import annotations

import os

from typer.testing import CliRunner

from disranker.cli import app

runner = CliRunner(env={"COLUMNS": "200", "TERMINAL_WIDTH": "200", "FORCE_COLOR": None, "NO_COLOR": "1"})


def test_serve_that_cannot_start_says_what_to_do_in_one_line(monkeypatch):
    """Before: on a loaded machine Serve's proxy missed its readiness checks and the command died with a 60-line
    traceback."""
    from disranker.serving import app as serving_app

    def refuse(local):
        raise RuntimeError("Proxy actor failed to start\n" + "  File ...\n" * 60)

    monkeypatch.setattr(serving_app, "start_local", refuse)
    result = runner.invoke(app, ["serve", "--config", "serve/config.yaml"])
    assert result.exit_code == 1 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert "Proxy actor failed to start" in line and "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S" in line


def test_a_local_serve_starts_ray_with_grpc_and_longer_readiness_checks_before_serve(monkeypatch):
    from ray import serve

    from disranker.serving import app as serving_app
    from disranker.serving.config import load_serve_file

    for name in [*serving_app.SLOW_START_S, *serving_app.GRPC_TRANSPORT_ENV]:  # unset, and restored after the test
        monkeypatch.setenv(name, "")  # (start_local sets them)
        monkeypatch.delenv(name)
    monkeypatch.setenv("RAY_SERVE_PROXY_USE_GRPC", "0")  # a user's own setting stays
    started = {}
    monkeypatch.setattr(serving_app, "ensure_ray", lambda: started.setdefault("ray_before_serve", not started))
    monkeypatch.setattr(serve, "start", lambda **kwargs: started.update(kwargs))
    monkeypatch.setattr(serve, "run", lambda *args, **kwargs: None)
    url = serving_app.start_local(load_serve_file("serve/config.yaml"))
    assert url == "http://127.0.0.1:8000" and started["http_options"]["request_timeout_s"] == 30
    assert started["ray_before_serve"]  # Ray started as the stages start it (metrics off), before Serve could
    assert {name: int(os.environ[name]) for name in serving_app.SLOW_START_S} == serving_app.SLOW_START_S
    assert os.environ["RAY_SERVE_USE_GRPC_BY_DEFAULT"] == "1" and os.environ["RAY_SERVE_PROXY_USE_GRPC"] == "0"
