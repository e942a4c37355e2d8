"""Asyncio front end for :class:`~models.inference.ModelRunner` that batches.

Why: a relay worker moderates several streams, each sampling a frame every so
often. Calling ``session.run`` on the event loop would stall every stream's
media for the length of an inference, so inference runs in a thread (ORT
releases the GIL). And while one run is in flight, frames from other streams
pile up; rather than queueing them as separate executor jobs, the next run
takes all of them at once (up to ``max_batch``) as one executor job: one thread
hop instead of B. Inside the job the runner's ``batch_mode`` decides between B
back-to-back single runs (CPU default: per-image cost is flat in B, and each
caller is answered as soon as its own image is done) and one stacked run (for
accelerators). ``bench/model_bench.py`` measures both.

Only one run is in flight per batcher: with one worker process per core and
``intra_op_num_threads=1`` a second concurrent run would just time-slice the
same core and make both late.

Urgent requests (a caller is holding video until the answer, e.g. the strict
route's gate on a new scene) go before the others, and in "loop" mode they
pre-empt a batch between two images: a held frame then waits for at most one
inference, not for a batch of routine re-checks queued before it. In "tensor" mode, where a
stacked run answers everyone at its end, urgent requests are batched only with each other.

An approximate runner (bf16, with an fp32 ``reference``) is checked here, because each
request carries the block thresholds its caller will apply: a result that might decide
differently from fp32 at those thresholds (:func:`models.recheck.needs_recheck`) is
computed again by the reference before its caller sees it. The other callers of a stacked
batch are answered first.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from models.detections import Detection
from models.inference import Runner
from models.letterbox import Letterbox
from models.recheck import needs_recheck

__all__ = ["AsyncBatcher", "BatchStats", "InferenceRequest"]


@dataclass(frozen=True, slots=True, eq=False)
class InferenceRequest:
    """One frame's (3, S, S) float32 tensor, the letterbox that maps boxes back, and the block
    thresholds (label -> score) the caller will judge the detections by: an approximate
    runner's result near one of them is re-computed in fp32. None: no decision rides on the
    scores, the approximate result is returned as it is.

    Equal only to itself: compared by value, two requests compared their tensors, which
    raised (found in the strict benchmark: a hurried request queued behind another)."""

    tensor: NDArray[np.float32]
    letterbox: Letterbox
    thresholds: Mapping[str, float] | None = None


@dataclass(slots=True, eq=False)
class _Pending:
    request: InferenceRequest
    future: asyncio.Future[list[Detection]]
    urgent: bool


@dataclass(slots=True)
class BatchStats:
    """Counters for tests and metrics: how many runs, how many images, and the
    sizes of the most recent batches (bounded: a relay worker runs for weeks)."""

    runs: int = 0
    images: int = 0
    rechecked: int = 0
    """Images an approximate runner's result was re-computed for in fp32."""
    batch_sizes: deque[int] = field(default_factory=lambda: deque(maxlen=256))
    run_s: deque[float] = field(default_factory=lambda: deque(maxlen=4096))
    """Each model run's duration (an image in "loop" mode, a stack in "tensor" mode, an fp32
    re-check), appended by the inference thread until :meth:`take_run_s` takes them (a relay
    worker, every second, for its metrics); bounded for an owner that never does."""

    def take_run_s(self) -> list[float]:
        """The run durations since the last call, oldest first; safe while the inference
        thread appends (only this side removes)."""
        taken: list[float] = []
        while self.run_s:
            taken.append(self.run_s.popleft())
        return taken


def _resolve(fut: asyncio.Future[list[Detection]], dets: list[Detection]) -> None:
    if not fut.done():
        fut.set_result(dets)


def _fail(fut: asyncio.Future[list[Detection]], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


class AsyncBatcher:
    """Submit frames from many coroutines; each gets back its own detections.

    Must be used from one event loop. ``executor`` defaults to a private
    single-thread pool (closed by :meth:`aclose`).
    """

    def __init__(
        self,
        runner: Runner,
        *,
        max_batch: int = 8,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.runner = runner
        self.max_batch = max_batch
        self._own_executor = executor is None
        self._executor = executor or concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="chatguard-infer"
        )
        self._pending: deque[_Pending] = deque()
        self._urgent: deque[_Pending] = deque()
        self._running: list[_Pending] = []
        """The batch in the inference thread (a routine request in it may be hurried)."""
        self._drainer: asyncio.Task[None] | None = None
        self._closed = False
        self.stats = BatchStats()

    async def infer(
        self,
        tensor: NDArray[np.float32],
        letterbox: Letterbox,
        *,
        urgent: bool = False,
        thresholds: Mapping[str, float] | None = None,
    ) -> list[Detection]:
        """Detections for one frame; batched with whatever else is waiting (``urgent`` ones
        first); ``thresholds``: see :class:`InferenceRequest`."""
        return await self.submit(InferenceRequest(tensor, letterbox, thresholds), urgent=urgent)

    async def submit(self, request: InferenceRequest, *, urgent: bool = False) -> list[Detection]:
        if self._closed:
            raise RuntimeError("AsyncBatcher is closed")
        s = self.runner.input_size
        if request.tensor.shape != (3, s, s):
            raise ValueError(f"expected a (3, {s}, {s}) tensor, got {request.tensor.shape}")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[Detection]] = loop.create_future()
        (self._urgent if urgent else self._pending).append(_Pending(request, fut, urgent))
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await fut

    def hurry(self, request: InferenceRequest) -> bool:
        """Serve a routine ``request`` still waiting as an urgent one, behind those already
        urgent: its caller has started holding video until the answer (the strict route's
        gate holds new frames that a pending re-check may cover). False if it was not found
        (it already ran, or its caller has not submitted it yet), so the caller may try again.
        Measured: a routine request hurried only while queued was almost never there, since
        each batch takes the routine ones along and the inference thread hands them back
        whenever an urgent one waits."""
        for p in self._pending:
            if p.request is request:
                self._pending.remove(p)
                p.urgent = True
                self._urgent.append(p)
                return True
        for p in self._running:  # not pre-empted from now on (read by the inference thread)
            if p.request is request:
                p.urgent = True
                return True
        return False

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._urgent or self._pending:
            batch: list[_Pending] = []
            for queue in (self._urgent, self._pending):
                if batch and self.runner.batch_mode == "tensor":
                    break  # a stacked run answers all at once: held frames go on their own
                while queue and len(batch) < self.max_batch:
                    p = queue.popleft()
                    if not p.future.done():  # skip callers that were cancelled while waiting
                        batch.append(p)
            if not batch:
                continue
            left: list[_Pending] = []
            rechecked = 0
            self._running = batch
            try:
                left, rechecked = await loop.run_in_executor(
                    self._executor, self._run_batch, loop, batch
                )
            except Exception as exc:  # pragma: no cover - _run_batch reports its own errors
                for p in batch:
                    _fail(p.future, exc)
            self._running = []
            for p in reversed(left):  # pre-empted: first in line (of its kind)
                (self._urgent if p.urgent else self._pending).appendleft(p)
            self.stats.runs += 1
            self.stats.rechecked += rechecked
            self.stats.images += len(batch) - len(left)
            self.stats.batch_sizes.append(len(batch) - len(left))

    def _run_batch(
        self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]
    ) -> tuple[list[_Pending], int]:
        """Runs in the executor thread (stacking B x 1.2 MB tensors stays off the loop too).

        Results go back to the loop with call_soon_threadsafe. In "loop" batch mode
        each caller is answered as soon as its own image is done; a caller cancelled
        meanwhile is skipped (reading ``done()`` from this thread is a benign race:
        at worst one wasted inference).

        Returns the requests it left undone and how many results it re-checked in fp32. In
        "loop" mode a routine request is not started while an urgent one waits (reading the
        urgent queue's length from this thread is the same benign race: at worst one
        inference's delay).
        """
        runner = self.runner
        rechecked = 0
        if runner.batch_mode == "loop":
            for k, p in enumerate(batch):
                if not p.urgent and self._urgent:
                    return batch[k:], rechecked
                if p.future.done():
                    continue
                try:
                    if self._answer(loop, p, self._run_raw(runner, p.request.tensor[None])[0]):
                        rechecked += self._recheck(loop, p)
                except Exception as exc:
                    loop.call_soon_threadsafe(_fail, p.future, exc)
            return [], rechecked
        try:
            out = self._run_raw(runner, np.stack([p.request.tensor for p in batch]))
        except Exception as exc:
            for p in batch:
                loop.call_soon_threadsafe(_fail, p.future, exc)
            return [], rechecked
        doubtful: list[_Pending] = []
        for i, p in enumerate(batch):
            try:
                if self._answer(loop, p, out[i]):
                    doubtful.append(p)
            except Exception as exc:
                loop.call_soon_threadsafe(_fail, p.future, exc)
        for p in doubtful:  # after every certain caller is answered
            try:
                rechecked += self._recheck(loop, p)
            except Exception as exc:
                loop.call_soon_threadsafe(_fail, p.future, exc)
        return [], rechecked

    def _run_raw(self, runner: Runner, tensors: NDArray[np.float32]) -> NDArray[np.float32]:
        """`runner`'s model on a (B, 3, S, S) stack, timed (``BatchStats.run_s``)."""
        start = time.perf_counter()
        out = runner.run_raw(tensors)
        self.stats.run_s.append(time.perf_counter() - start)
        return out

    def _answer(
        self, loop: asyncio.AbstractEventLoop, p: _Pending, output: NDArray[np.float32]
    ) -> bool:
        """Answer ``p`` from its raw output unless it needs an fp32 re-check (then True)."""
        runner, req = self.runner, p.request
        dets = runner.decode(output, req.letterbox)
        if (
            runner.reference is not None
            and req.thresholds is not None
            and needs_recheck(
                runner.labels, runner.peaks(output), dets, req.thresholds, runner.recheck_margin
            )
        ):
            return True
        loop.call_soon_threadsafe(_resolve, p.future, dets)
        return False

    def _recheck(self, loop: asyncio.AbstractEventLoop, p: _Pending) -> int:
        """Answer ``p`` with the fp32 reference's detections; 1 if it ran, 0 if cancelled."""
        reference = self.runner.reference
        assert reference is not None
        if p.future.done():
            return 0
        raw = self._run_raw(reference, p.request.tensor[None])[0]
        dets = reference.decode(raw, p.request.letterbox)
        loop.call_soon_threadsafe(_resolve, p.future, dets)
        return 1

    async def aclose(self) -> None:
        """Finish in-flight work, then release the private executor."""
        self._closed = True
        if self._drainer is not None:
            await asyncio.shield(self._drainer)
        if self._own_executor:
            self._executor.shutdown(wait=False)

    async def __aenter__(self) -> AsyncBatcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
