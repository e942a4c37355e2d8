"""relay/worker.py: what a real worker process loads (the strict route's code only once it
moderates), and its half of readiness (told that a strict route is in force, it loads the model
and runs it once off its event loop, and says in its load reports whether it can moderate).

Real service (uvicorn), its supervisor's worker process, two aiortc clients; the worker's
shared objects are read from ``/proc/PID/maps`` (the pid from ``/stats``), so an import anywhere
on the worker's path (its command line, the control protocol, the hub) is caught, not only one
in ``relay.worker``. A fresh interpreter importing ``relay.worker`` checks the relay's own
modules alone."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import models.runtime
from models.manifest import default_manifest, parse_manifest
from relay import control as rc
from relay.worker import RelayWorker
from signaling.route_policy import Route
from tests.support.rtcclient import ChatPeer
from tests.support.server import make_config, run_server, wait_for_workers

STRICT_ONLY = {
    "onnxruntime": re.compile(r"/onnxruntime/"),
    "fastpath": re.compile(r"/fastpath/\w+\.cpython-[^/]*\.so$"),
}
"""Shared objects only the strict route needs: the model runtime and the Cython frame code."""


def test_the_worker_module_loads_no_strict_route_code() -> None:
    """A fresh interpreter, so nothing this test session imported counts: the worker's own
    modules (hub, adapter, control) leave the strict route, the model and fastpath alone."""
    probe = (
        "import sys, relay.worker; print(sorted(m for m in sys.modules if m == 'relay.strict' "
        "or m.startswith('relay.strict.') or m.split('.')[0] in ('onnxruntime', 'fastpath', "
        "'models')))"
    )
    done = subprocess.run(
        [sys.executable, "-P", "-c", probe], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout


def shared_objects(pid: int) -> set[str]:
    """Paths of the shared objects mapped into process ``pid``."""
    maps = Path(f"/proc/{pid}/maps").read_text(encoding="utf-8")
    fields = (line.split(maxsplit=5) for line in maps.splitlines())
    return {f[5] for f in fields if len(f) == 6 and re.search(r"\.so(\.[\d.]+)?$", f[5])}


@pytest.mark.parametrize("route", [Route.RELAY, Route.STRICT])
async def test_only_a_worker_that_moderates_loads_the_model_and_the_frame_code(
    route: Route,
) -> None:
    config = make_config(relay={"workers": 1})
    with contextlib.contextmanager(run_server)(config, route) as server:
        (worker,) = await wait_for_workers(server, 1)
        alice = await ChatPeer.join(server.ws_url, level=200, tone_hz=440)
        bob = await ChatPeer.join(server.ws_url, level=60, tone_hz=1000)
        try:
            await alice.wait_for_frames(10, timeout=30)
            await bob.wait_for_frames(10, timeout=30)
            assert alice.route == bob.route == route.value
            (after,) = httpx.get(server.admin_url + "/stats").json()["relay_workers"]
            assert after["pid"] == worker["pid"] and after["legs"] == 2  # the call went there
            loaded = shared_objects(int(str(worker["pid"])))
        finally:
            await alice.close()
            await bob.close()
    # the reading sees the worker's libraries: SRTP carried the call either way
    assert any("pylibsrtp" in p for p in loaded), sorted(loaded)
    found = {name for name, pattern in STRICT_ONLY.items() if any(map(pattern.search, loaded))}
    assert found == (set(STRICT_ONLY) if route is Route.STRICT else set()), sorted(loaded)


def configure(strict: bool) -> rc.Configure:
    return rc.Configure(
        block=None,
        verdict_ttl_s=1.0,
        min_classifications_per_s=2.0,
        mute_audio_while_blocked=False,
        strict=strict,
    )


async def prepared(strict: bool) -> RelayWorker:
    worker = RelayWorker("ws://127.0.0.1:9/relay", "token", "w1", 10)
    worker._configure(configure(strict))
    if worker._preparing is not None:
        await worker._preparing
    return worker


async def test_no_strict_route_no_model() -> None:
    worker = await prepared(strict=False)
    assert worker.moderation_ready is None and worker._moderator is None


@pytest.mark.timeout(60)
async def test_strict_route_loads_and_tests_the_model() -> None:
    worker = await prepared(strict=True)
    assert worker.moderation_ready is True and worker.moderation_error == ""
    assert worker._moderator is not None
    await worker._moderator.aclose()


async def test_a_missing_model_file_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundled = default_manifest()
    assert bundled.source is not None
    text = Path(bundled.source).read_text(encoding="utf-8")
    head = text[: text.index("[weights]")]
    broken = tmp_path / "broken.toml"
    broken.write_text(head + '[weights]\npath = "missing.onnx"\n' + text[text.index("[input]") :])
    monkeypatch.setattr(models.runtime, "default_manifest", lambda: parse_manifest(
        broken.read_text(), source=str(broken)
    ))  # fmt: skip
    worker = await prepared(strict=True)
    assert worker.moderation_ready is False and worker._moderator is None
    assert "ManifestError" in worker.moderation_error
    assert str(tmp_path / "missing.onnx") in worker.moderation_error
