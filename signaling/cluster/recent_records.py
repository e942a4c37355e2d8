"""Recent operator events and open reports in Redis, shared by every node of a pool
(``signaling.recent_records`` says why and what; this is its Redis store).

Each kind is one Redis stream (``<prefix>recent:events``, ``<prefix>recent:reports``): an
entry's id is the time Redis took it, so retention is a trim by id (``XTRIM MINID``) and a
read from an id (``XRANGE``), and the cap is ``XADD``'s exact ``MAXLEN``; the key itself
expires once nothing was added for the retention. Records are written by a task of their own,
in batches, so that adding never waits; while Redis is unreachable they wait here (at most one
cap of each kind, the oldest dropped first) and are written once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from typing import Any

from signaling.recent_records import (
    KINDS,
    Kind,
    Record,
    RecordsUnavailable,
    Retention,
)

log = logging.getLogger("chatguard.cluster")

RETRY_S = 0.5
"""Pause before writing again after Redis refused a batch."""
FIELD = "r"
"""The one field of each stream entry: the record as JSON."""


class RedisRecords:
    """The records of one service, in the Redis at `redis_url` under `prefix`."""

    def __init__(self, redis_url: str, prefix: str, retention: dict[Kind, Retention]) -> None:
        self._url = redis_url
        self._keys: dict[Kind, str] = {kind: f"{prefix}recent:{kind}" for kind in KINDS}
        self._retention = retention
        self._unsent = _queues(retention)
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._outage = False
        self._redis: Any = None

    def add(self, kind: Kind, record: Record, now_unix: float) -> None:
        self._unsent[kind].append(json.dumps(record))
        self._wake.set()

    async def listed(self, kind: Kind, now_unix: float) -> list[Record]:
        oldest_ms = int((now_unix - self._retention[kind].seconds) * 1000)
        try:
            entries = await self._redis.xrange(self._keys[kind], min=str(oldest_ms), max="+")
        except Exception as exc:
            raise RecordsUnavailable(f"the shared store (Redis) is unreachable: {exc}") from None
        records: list[Record] = [json.loads(fields[FIELD]) for _, fields in entries]
        return records[-self._retention[kind].limit :]

    async def start(self) -> None:
        import redis.asyncio as aioredis  # only a node of a cluster needs the client

        self._redis = aioredis.Redis.from_url(self._url, decode_responses=True)
        self._writer = asyncio.create_task(self._write_loop())

    async def stop(self) -> None:
        """What is still unwritten gets one more try, briefly."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._write(), 2.0)
        await self._redis.aclose()

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._write()
            except Exception as exc:  # kept in `_unsent`: said once, tried again
                if not self._outage:
                    log.error("recent events and reports not written to Redis: %s", exc)
                self._outage = True
                await asyncio.sleep(RETRY_S)
                self._wake.set()
            else:
                if self._outage:
                    log.info("recent events and reports are written to Redis again")
                self._outage = False

    async def _write(self) -> None:
        """One pipeline for everything unsent; what Redis did not take is unsent again,
        before what was added meanwhile (the cap still holding: the oldest go)."""
        taken, self._unsent = self._unsent, _queues(self._retention)
        if not any(taken.values()):
            return
        pipe = self._redis.pipeline(transaction=False)
        oldest_s = time.time()
        for kind, records in taken.items():
            key, keep = self._keys[kind], self._retention[kind]
            for record in records:
                pipe.xadd(key, {FIELD: record}, maxlen=keep.limit, approximate=False)
            if records:
                pipe.xtrim(key, minid=str(int((oldest_s - keep.seconds) * 1000)))
                pipe.pexpire(key, int(keep.seconds * 1000))
        try:
            await pipe.execute()
        except BaseException:
            for kind, records in taken.items():
                records.extend(self._unsent[kind])
            self._unsent = taken
            raise


def _queues(retention: dict[Kind, Retention]) -> dict[Kind, deque[str]]:
    """Records waiting to be written, per kind: at most one cap's worth."""
    return {kind: deque(maxlen=retention[kind].limit) for kind in KINDS}
