"""Delivery of operator events to the operator's HTTP endpoint: signed, retried, bounded.

Why these rules: an audit trail is worth little if a receiver can be fed forged events, so
each request is signed (HMAC-SHA256 with the shared secret over the timestamp and the body,
as ``X-Chatguard-Signature: sha256=<hex>`` with ``X-Chatguard-Timestamp``, so that a receiver
can also refuse replays); a receiver that is down for a while must not lose events, so each is
retried with growing delays; and it must never slow a call, so events wait in a bounded queue
(the oldest are dropped, and counted, when it is full) and one background task sends them, the
blocking HTTP request in a thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import hmac
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

log = logging.getLogger("chatguard.events")

RETRY_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
"""Waits between attempts; after the last one the event is given up (and logged)."""
TIMEOUT_S = 5.0


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of ``timestamp + "." + body`` keyed with `secret`: what a receiver
    recomputes and compares (in constant time) before trusting an event."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


class WebhookSender:
    """One queue and one sender task per service; `submit` never waits."""

    def __init__(
        self,
        url: str,
        secret: str,
        queue_limit: int = 1000,
        retry_delays_s: Sequence[float] = RETRY_DELAYS_S,
    ) -> None:
        self.url = url
        self.secret = secret
        self.retry_delays_s = retry_delays_s
        self._queue: collections.deque[bytes] = collections.deque(maxlen=queue_limit)
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0
        self.dropped = 0
        """Events lost: pushed out of a full queue, or given up after the last retry."""

    def submit(self, body: bytes) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
            log.warning("event webhook queue full: dropped the oldest event")
        self._queue.append(body)
        self._ready.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop sending; what is still queued is lost (it is in the log already)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            while self._queue:
                await self._deliver(self._queue.popleft())
            self._ready.clear()

    async def _deliver(self, body: bytes) -> None:
        for attempt in range(len(self.retry_delays_s) + 1):
            try:
                await asyncio.to_thread(self._post, body)
            except (OSError, ValueError) as exc:  # refused, timed out, HTTP error status
                if attempt == len(self.retry_delays_s):
                    self.dropped += 1
                    log.error("event webhook %s: giving up on an event: %s", self.url, exc)
                    return
                log.warning("event webhook %s: %s; retrying", self.url, exc)
                await asyncio.sleep(self.retry_delays_s[attempt])
            else:
                self.delivered += 1
                return

    def _post(self, body: bytes) -> None:
        """One signed POST (in a worker thread); raises unless the receiver answers 2xx."""
        timestamp = str(int(time.time()))
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "chatguard-events",
                "X-Chatguard-Timestamp": timestamp,
                "X-Chatguard-Signature": signature(self.secret, timestamp, body),
            },
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            response.read()
