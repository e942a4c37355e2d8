"""`chatguard serve` as an operator runs it: every log line in one format, and no line per
health poll or per connection unless asked for with `--log-level debug`."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest
from websockets.sync.client import connect

from tests.support.ports import free_port

LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) +[\w.]+: ")


def serve_and_poll(*options: str, workers: int = 0) -> list[str]:
    """Run serve, poll /healthz and /readyz, open and close one client, and wait until
    `workers` relay workers have joined (a worker stopped before that logs nothing); its log
    lines."""
    port, admin_port = free_port(), free_port()
    command = [sys.executable, "-m", "chatguard.cli", "serve", "--port", str(port)]
    command += ["--admin-port", str(admin_port)]
    process = subprocess.Popen(
        [*command, "--relay-workers", "0", *options], stderr=subprocess.PIPE, text=True
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + "/healthz")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        for _ in range(3):
            assert httpx.get(base + "/healthz").status_code == 200
            assert httpx.get(base + "/readyz").status_code == 200
        with connect(f"ws://127.0.0.1:{port}/ws") as ws:
            ws.recv(5)
        stats = f"http://127.0.0.1:{admin_port}/stats"
        while len(httpx.get(stats).json()["relay_workers"]) < workers:
            assert time.monotonic() < deadline + 30, "the relay workers did not join"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    return err.splitlines()


@pytest.mark.timeout(90)
def test_info_logs_are_one_format_without_polls_or_connections() -> None:
    lines = serve_and_poll()
    assert lines and all(LINE.match(line) for line in lines), lines
    assert any("uvicorn" in line for line in lines)  # uvicorn's own lines, in our format
    assert not any("/healthz" in line or "/readyz" in line for line in lines), lines
    assert not any("WebSocket" in line or "connection open" in line for line in lines), lines


@pytest.mark.timeout(90)
def test_debug_logs_every_request_in_the_same_format() -> None:
    lines = serve_and_poll("--log-level", "debug")
    polls = [line for line in lines if "GET /healthz" in line]
    assert len(polls) >= 3 and all(LINE.match(line) for line in polls), lines
    assert any('"WebSocket /ws" [accepted]' in line for line in lines), lines


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_json_logs_are_one_object_per_line_for_every_logger() -> None:
    lines = serve_and_poll("--log-format", "json", "--relay-workers", "1", workers=1)
    records = [json.loads(line) for line in lines]  # every line, or this raises
    assert all(r["time"].endswith("Z") and r["level"] and r["message"] for r in records)
    loggers = {r["logger"] for r in records}
    # signaling's, uvicorn's and the relay worker process's lines, all in the one format
    assert {"chatguard", "uvicorn.error", "chatguard.relay"} <= loggers, loggers
    assert len({r["pid"] for r in records}) == 2  # serve's and its worker's
    assert not any("/healthz" in r["message"] for r in records)
