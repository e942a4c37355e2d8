"""/readyz: ready only while every route in force can be carried. The pure rules first, then the
real server with a worker speaking the control protocol over a real socket, then a real
relay worker process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
import websockets

from relay import control as rc
from signaling.readiness import unready_reasons
from signaling.relays import WorkerInfo
from signaling.route_policy import Route
from tests.support.server import RunningServer, make_config, run_server

TOKEN = "test-relay-token"


def worker(
    name: str = "w1", ready: bool | None = None, error: str = "", draining: bool = False
) -> WorkerInfo:
    info = WorkerInfo(name, 10, 1, draining=draining, moderation_ready=ready)
    info.moderation_error = error
    return info


def test_direct_only_needs_no_relay() -> None:
    assert unready_reasons({Route.DIRECT}, []) == []


@pytest.mark.parametrize("routes", [{Route.RELAY}, {Route.DIRECT, Route.STRICT}])
def test_a_relayed_route_needs_a_worker_taking_calls(routes: set[Route]) -> None:
    (reason,) = unready_reasons(routes, [worker(draining=True)])
    assert "no relay worker is connected" in reason
    assert ", ".join(sorted(r.value for r in routes if r is not Route.DIRECT)) in reason


def test_relay_route_is_ready_with_any_worker() -> None:
    assert unready_reasons({Route.RELAY}, [worker(ready=None)]) == []


def test_strict_route_needs_a_worker_that_can_moderate() -> None:
    broken = worker("w1", ready=False, error="ManifestError: weights.path: file not found: /x")
    (reason,) = unready_reasons({Route.STRICT}, [broken, worker("w2", ready=None)])
    assert "can moderate" in reason
    assert "w1: ManifestError: weights.path: file not found: /x" in reason
    assert "w2: model not loaded yet" in reason
    assert unready_reasons({Route.STRICT}, [broken, worker("w3", ready=True)]) == []
    # a draining worker takes no calls, however able
    assert unready_reasons({Route.STRICT}, [worker("w3", ready=True, draining=True)]) != []


@pytest.fixture
def relay_server() -> Iterator[RunningServer]:
    """`--route relay` with no local workers: a test's own worker connects by hand."""
    yield from run_server(make_config(relay={"workers": 0, "token": TOKEN}), Route.RELAY)


@pytest.fixture
def strict_region_server() -> Iterator[RunningServer]:
    """Direct by default, strict for one region: the strict route is in force all the same."""
    config = make_config(relay={"workers": 0, "token": TOKEN}, regions={"routes": {"DE": "strict"}})
    yield from run_server(config)


@asynccontextmanager
async def control_worker(server: RunningServer, **load: object) -> AsyncIterator[rc.Configure]:
    """A worker that says hello, reads its configuration and reports `load` once."""
    url = f"ws://{server.host}:{server.port}/relay"
    async with websockets.connect(url) as ws:
        await ws.send(rc.encode(rc.Hello(worker_id="w1", token=TOKEN, pid=1, max_sessions=10)))
        configure = rc.decode_signaling_message(await ws.recv())
        assert isinstance(configure, rc.Configure)
        report = rc.Load(legs=0, cpu_percent=0, rss_bytes=0, **load)  # type: ignore[arg-type]
        await ws.send(rc.encode(report))
        yield configure


async def readiness(server: RunningServer, http: httpx.AsyncClient) -> httpx.Response:
    return await http.get(server.http_url + "/readyz")


async def wait_for(server: RunningServer, ready: bool) -> dict[str, object]:
    async with httpx.AsyncClient() as http:
        for _ in range(100):
            response = await readiness(server, http)
            body: dict[str, object] = response.json()
            if body["ready"] is ready:
                assert response.status_code == (200 if ready else 503)
                return body
            await asyncio.sleep(0.05)
    raise AssertionError(f"/readyz never said ready={ready}: {body}")


async def test_relay_route_without_worker_is_not_ready_until_one_connects(
    relay_server: RunningServer,
) -> None:
    body = await wait_for(relay_server, ready=False)
    assert body["reasons"] == [
        "no relay worker is connected and taking calls (routes in force: relay)"
    ]
    async with control_worker(relay_server) as configure:
        assert not configure.strict
        assert await wait_for(relay_server, ready=True) == {"ready": True}
    await wait_for(relay_server, ready=False)  # gone again
    async with httpx.AsyncClient() as http:
        assert (await http.get(relay_server.http_url + "/healthz")).json() == {"ok": True}


async def test_strict_region_needs_a_worker_that_loaded_its_model(
    strict_region_server: RunningServer,
) -> None:
    error = "ManifestError: weights.path: file not found: /nowhere/model.onnx"
    async with control_worker(
        strict_region_server, moderation_ready=False, moderation_error=error
    ) as configure:
        assert configure.strict  # told to load the model now
        body = await wait_for(strict_region_server, ready=False)
        reasons = body["reasons"]
        assert isinstance(reasons, list) and len(reasons) == 1
        reason = str(reasons[0])
        assert "can moderate (strict route)" in reason and error in reason
    async with control_worker(strict_region_server, moderation_ready=True):
        await wait_for(strict_region_server, ready=True)


@pytest.mark.timeout(120)
async def test_a_real_worker_makes_the_relay_route_ready() -> None:
    config = make_config(relay={"workers": 1})
    for server in run_server(config, Route.RELAY):  # returns once /readyz said ready
        async with httpx.AsyncClient() as http:
            assert (await readiness(server, http)).json() == {"ready": True}
            (info,) = (await http.get(server.admin_url + "/stats")).json()["relay_workers"]
        assert info["moderation_ready"] is None  # no strict route: the model stays unloaded
