"""The service a benchmark drives: a ``chatguard serve`` it starts here, or a deployment's URL.

Why one module: every workload needs the same few things from a service (its client
WebSocket, its ``/stats`` with the relay workers' own CPU and memory figures, on the admin
listener, a clear error when it is not there), whether the benchmark started it or an
engineer pointed at it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import websockets

from bench.workload import RunError
from signaling.config import AdminConfig


class ServiceError(RunError):
    """The service is not reachable or not in the state a benchmark needs; says which."""


@dataclass(frozen=True)
class Endpoints:
    """Where a chatguard service answers."""

    ws_url: str
    """Client WebSocket, ``ws://HOST:PORT/ws``."""
    stats_url: str
    """JSON counters on the admin listener, ``http://HOST:ADMIN_PORT/stats``."""

    @property
    def ready_url(self) -> str:
        """``/readyz``, on the public port beside ``/ws``."""
        parts = urllib.parse.urlsplit(self.ws_url)
        scheme = "https" if parts.scheme == "wss" else "http"
        return f"{scheme}://{parts.netloc}/readyz"

    @property
    def is_local(self) -> bool:
        """The service runs on this machine (loopback): its processes' /proc can be read."""
        host = urllib.parse.urlsplit(self.ws_url).hostname or ""
        return host in ("localhost", "::1") or host.startswith("127.")


def endpoints_from_target(url: str, admin_url: str | None = None) -> Endpoints:
    """The endpoints of a deployment given as ``http(s)://HOST:PORT`` or ``ws(s)://HOST:PORT/ws``,
    with its admin listener at ``admin_url`` (default: the same host, the default admin port;
    the deployment must let this machine reach it).

    Raises ValueError with a message naming the option for anything else.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise ValueError(
            f"--target {url!r}: give the service's address, e.g. http://HOST:8080 "
            "or ws://HOST:8080/ws"
        )
    secure = parts.scheme in ("https", "wss")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    admin = admin_url or f"http://{host}:{AdminConfig().port}"
    return Endpoints(
        ws_url=f"{'wss' if secure else 'ws'}://{parts.netloc}/ws",
        stats_url=admin.rstrip("/") + "/stats",
    )


_HANDED_OUT: set[int] = set()
"""Ports this process was already given: the kernel may offer a port again as soon as its probe
socket is closed, and a service given it twice (public and admin) refuses to start."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, never one this process was given before."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def free_port_run(count: int) -> int:
    """The first of ``count`` consecutive TCP ports free on every address (``serve`` gives
    its relay workers consecutive ICE-TCP ports)."""
    while True:
        first = free_port()
        if first + count > 65536:
            continue
        with contextlib.ExitStack() as held:
            try:
                for port in range(first, first + count):
                    probe = held.enter_context(socket.socket())
                    probe.bind(("0.0.0.0", port))
            except OSError:
                continue
        return first


def end_process(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM, then SIGKILL if it has not ended within ``timeout_s``; waited for either way."""
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


DECISIONS_LOGGER: Final = "relay.strict.decisions"
"""The moderation decision log's logger (``relay.strict.decision_log``), named here so that the
load tool does not import the media stack to leave its lines out."""

ONE_ADDRESS_LIMITS = "\n[limits]\nper_address = false\n"
"""Every simulated user comes from the load generator's one address: per-address limits
(``signaling.budgets``) would refuse all but the first few; per-connection ones still hold."""


class EmbeddedService:
    """``chatguard serve`` in a child process on a local port (a free one unless given),
    stopped with :meth:`stop`.

    Its output goes to a file, not the terminal: what it logged while running (a worker that
    died, say) is printed when it stops, what it logs while shutting down (workers that find
    signaling gone) is not, since that is the stop itself and would read as a failure. Lines of
    the moderation decision log (``[moderation] decision_log``, thousands a minute) are never
    printed: :meth:`logged` hands them to the caller that asked for them.
    """

    def __init__(
        self, extra_args: list[str], config_toml: str = "", port: int | None = None
    ) -> None:
        port = port or free_port()
        admin_port = free_port()
        self.endpoints = Endpoints(
            ws_url=f"ws://127.0.0.1:{port}/ws", stats_url=f"http://127.0.0.1:{admin_port}/stats"
        )
        command = [
            *(sys.executable, "-m", "chatguard.cli", "serve"),
            *("--port", str(port), "--admin-port", str(admin_port)),
        ]
        self._config_dir = tempfile.TemporaryDirectory(prefix="chatguard-bench-")
        path = Path(self._config_dir.name) / "chatguard.toml"
        path.write_text(config_toml + ONE_ADDRESS_LIMITS)
        command += ["--config", str(path)]
        self._log = tempfile.TemporaryFile(prefix="chatguard-bench-serve-")  # noqa: SIM115 (closed by stop)
        self.process = subprocess.Popen(
            [*command, "--log-level", "warning", *extra_args],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def logged(self) -> list[str]:
        """The lines it logged so far."""
        size = os.fstat(self._log.fileno()).st_size
        self._log.seek(0)
        return self._log.read(size).decode(errors="replace").splitlines()

    def stop(self) -> None:
        """Stop the service; print what it logged before this call, if anything."""
        lines = [line for line in self.logged() if DECISIONS_LOGGER not in line]
        end_process(self.process, 20)
        self._config_dir.cleanup()
        self._log.close()
        text = "\n".join(lines).strip()
        if text:
            print(f"the service started here logged:\n{text}", file=sys.stderr, flush=True)


def read_stats(stats_url: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """The service's ``/stats`` JSON; ServiceError saying why if it cannot be read."""
    try:
        with urllib.request.urlopen(stats_url, timeout=timeout_s) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data
    except (OSError, ValueError) as exc:
        raise ServiceError(f"{stats_url}: {exc}") from None


def wait_until_up(ws_url: str, timeout_s: float) -> None:
    """Wait until ``ws_url`` answers a WebSocket handshake and sends its first message.

    Why a deadline and the last error in the message: an engineer pointing the benchmark at a
    wrong host or port should learn that at once, and why (refused, no such host, HTTP 404).
    """

    async def probe() -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                    async with websockets.connect(ws_url, open_timeout=None) as ws:
                        await ws.recv()
                        return
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                if time.monotonic() > deadline:
                    reason = str(exc) or type(exc).__name__
                    raise ServiceError(
                        f"{ws_url} is not reachable within {timeout_s:g} s: {reason}"
                    ) from None
                await asyncio.sleep(0.2)

    asyncio.run(probe())


def _ready(ready_url: str) -> bool:
    """The service's ``/readyz``; a service too old to have one is ready."""
    try:
        with urllib.request.urlopen(ready_url, timeout=5):
            return True
    except urllib.error.HTTPError as exc:
        return exc.code == 404
    except OSError as exc:
        raise ServiceError(f"{ready_url}: {exc}") from None


def wait_for_relays(endpoints: Endpoints, count: int, timeout_s: float) -> list[dict[str, Any]]:
    """The service's relay workers once at least ``count`` have joined and the service is
    ready (for a strict route: a worker has loaded its model) (ServiceError if not)."""
    stats_url = endpoints.stats_url
    deadline = time.monotonic() + timeout_s
    while True:
        workers: list[dict[str, Any]] = read_stats(stats_url).get("relay_workers", [])
        live = [w for w in workers if not w.get("draining")]
        if len(live) >= count and _ready(endpoints.ready_url):
            return live
        if time.monotonic() > deadline:
            raise ServiceError(
                f"{stats_url}: {len(live)} relay worker(s) after {timeout_s:g} s, need {count} "
                "(is the deployment's relay running and connected to signaling?)"
            )
        time.sleep(0.2)
