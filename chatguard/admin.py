"""The admin listener: ``/metrics`` (Prometheus), ``/stats``, ``/events`` and ``/reports``
(JSON) and a read-only page of the last two (``/``) on their own socket.

Why a second listener rather than routes on the public port: these pages name worker
processes and show the whole service's traffic, which is the operator's business, not the
world's; by default the listener binds to localhost only (``[admin]`` in the config). It is a
second uvicorn server in the same process and event loop as the public one, started and
stopped with the public app (a ``BackgroundService`` of ``signaling.app.create_app``), so it
reads the live hub without any copying or locking.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Iterator

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from chatguard import admin_page
from chatguard.gc_pauses import GcPausesCollector, process_gc_pauses
from signaling.app import SignalingService
from signaling.config import AdminConfig
from signaling.metrics import metrics_registry
from signaling.recent_records import Kind, Record, RecordsUnavailable

log = logging.getLogger("chatguard.admin")


def create_admin_app(service: SignalingService) -> Starlette:
    """``/metrics`` in Prometheus' text format, ``/stats`` as JSON, ``/events``, the most
    recent operator events, and ``/reports``, the open reports (oldest first; the log and the
    webhook keep every event), and ``/``, both as a page. With a shared Redis the last three
    are the whole service's; when it cannot be read they answer 503 and say why."""
    registry = metrics_registry(service.hub, service.budgets, service.webhook)
    registry.register(GcPausesCollector(process_gc_pauses()))

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def stats(request: Request) -> Response:
        return JSONResponse(service.stats())

    async def listed(kind: Kind) -> list[Record] | str:
        """The records, or why they cannot be had."""
        try:
            return await service.records.listed(kind, time.time())
        except RecordsUnavailable as exc:
            return str(exc)

    async def records_json(request: Request) -> Response:
        kind: Kind = "events" if request.url.path == "/events" else "reports"
        records = await listed(kind)
        if isinstance(records, str):
            return JSONResponse({"error": records}, status_code=503)
        return JSONResponse(records)

    async def page(request: Request) -> Response:
        node = "" if service.cluster is None else service.cluster.name
        html = admin_page.render(await listed("events"), await listed("reports"), node)
        csp = {"Content-Security-Policy": admin_page.CONTENT_SECURITY_POLICY}
        return HTMLResponse(html, headers=csp)

    return Starlette(
        routes=[
            Route("/", page),
            Route("/metrics", metrics),
            Route("/stats", stats),
            Route("/events", records_json),
            Route("/reports", records_json),
        ]
    )


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signals alone: the public server in the same process
    handles SIGINT/SIGTERM, and its shutdown stops this one."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _NameTheListener(logging.Filter):
    """uvicorn logs "Started server process", "Shutting down" and "Finished server process" for
    each of the process's two servers on one logger, so an operator read every line twice and
    could not tell which server stopped. The admin listener's own say so."""

    def __init__(self, listener: AdminListener) -> None:
        super().__init__()
        self._listener = listener

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            task = asyncio.current_task()
        except RuntimeError:  # a thread without an event loop
            return True
        if task is not None and task is self._listener._task:
            record.msg = f"admin listener: {record.msg}"
        return True


class AdminListener:
    """The admin app on its own socket, for the life of the public app."""

    def __init__(self, config: AdminConfig, access_log: bool = False) -> None:
        """``access_log``: as the public server's; uvicorn's access logger is one per process,
        and a server configured without it silences it for the other server too."""
        self.config = config
        self.access_log = access_log
        self.app: Starlette | None = None
        """Set once the service exists (``chatguard.serve``), before the public app starts."""
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self._log_filter = _NameTheListener(self)

    async def start(self) -> None:
        """Bind here, so that a port in use fails the service's start-up with a clear error
        rather than a log line from a background task."""
        if self.config.port == 0:
            return
        assert self.app is not None, "AdminListener.app must be set before start"
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sock = self._socket = socket.create_server(
            (self.config.host, self.config.port), family=family
        )
        self._server = _QuietServer(
            uvicorn.Config(self.app, lifespan="off", log_config=None, access_log=self.access_log)
        )
        logging.getLogger("uvicorn.error").addFilter(self._log_filter)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise RuntimeError("the admin listener stopped at start")
            await asyncio.sleep(0.01)
        log.info(
            "admin listener (/, /metrics, /stats, /events, /reports) on http://%s:%d/",
            self.config.host, self.config.port,
        )  # fmt: skip

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task
        logging.getLogger("uvicorn.error").removeFilter(self._log_filter)
        if self._socket is not None:
            self._socket.close()
