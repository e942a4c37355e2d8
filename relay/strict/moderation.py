"""Strict route, the I/O half: decode a moderated leg's video, classify it, carry out the gate.

Per moderated incoming video stream (:class:`ModeratedStream`)::

    RTP packets --depacketize--> encoded frames --PyAV decode (thread pool)--> picture
      picture --fastpath.scene.luma_signature, luma_detail--> ModerationGate.on_frame --> actions
      Classify --fastpath Letterboxer (thread pool)--> AsyncBatcher (model) --> policy verdict
      Release --ReleasePacer--> the frame's original packets to the hub (rewritten and sent
      as usual), a burst of released frames spread at twice the pace they came in

What is decided where: ``relay.strict.gate`` decides (sans-I/O, fail closed); this module only runs
codecs and models off the event loop and hands the gate's decisions to a :class:`StreamSink`
(the hub). Frames are decoded strictly in order, one at a time per stream: a decoder is stateful.

Privacy: pixels exist only in the decoded picture of the frame being analysed and in the model
input tensors (preallocated, reused, overwritten); nothing is logged but counts, labels and
scores, nothing is written anywhere. Encoded packets are kept only while the gate holds them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import av
import numpy as np
from numpy.typing import NDArray

from fastpath.preprocess import letterboxer
from fastpath.scene import luma_detail, luma_signature
from models.batching import AsyncBatcher, InferenceRequest
from models.letterbox import Letterbox
from models.runtime import open_runner
from relay import rtp
from relay.control import ModerationLoad
from relay.strict.block_policy import ModerationPolicy
from relay.strict.decision_log import DecisionLog
from relay.strict.decode_limits import DecodeBudget, picture_size
from relay.strict.depacketize import Codec, Depacketizer, EncodedFrame
from relay.strict.gate import (
    Action,
    Blocked,
    Classify,
    Drop,
    GateConfig,
    GateState,
    ModerationGate,
    Release,
    RequestKeyframe,
    Resumed,
    Signature,
)
from relay.strict.release_pacing import ReleasePacer

log = logging.getLogger(__name__)

SIGNATURE_GRID: Final = (18, 32)
MAX_BACKLOG: Final = 30
"""Frames waiting for the decoder beyond which the stream gives up on them (about 1 s):
they are dropped as undecodable and the decoder restarts at a keyframe."""
TICK_S: Final = 0.1
DEFAULT_MAX_PIXELS: Final = 1920 * 1088
DEFAULT_DECODE_BUDGET: Final = 0.25


class StreamSink(Protocol):
    """Where a moderated stream's decisions go (implemented by the hub)."""

    def release(self, packets: Sequence[bytes], restart: bool, now: float, held_s: float) -> None:
        """Forward these original packets; ``restart``: frames were withheld since the last
        release (this one starts with a keyframe), so continue the outgoing numbering;
        ``held_s``: how long the frame waited here since its last packet came."""

    def request_keyframe(self, media_ssrc: int, now: float) -> None:
        """Ask the sender for a keyframe (throttled by the sink)."""

    def moderation_event(self, state: str, label: str, score: float) -> None:
        """``blocked`` (with the label and score that blocked) or ``resumed``."""


@dataclass(slots=True)
class StreamStats:
    """Counters and recent timings (seconds; bounded) for metrics and the benchmark."""

    frames: int = 0
    classified: int = 0
    no_verdict: int = 0
    released: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    requested: Counter[str] = field(default_factory=Counter)
    """Classification requests by the gate's reason (``keyframe``, ``scene``, ``settle``,
    ``late``, ``periodic``, ``resume``)."""
    decode_s: deque[float] = field(default_factory=lambda: deque(maxlen=2048))
    preprocess_s: deque[float] = field(default_factory=lambda: deque(maxlen=2048))
    classify_s: deque[float] = field(default_factory=lambda: deque(maxlen=2048))
    """From submitting a tensor to its detections (queueing in the batcher included)."""
    hold_s: deque[float] = field(default_factory=lambda: deque(maxlen=2048))
    """From a frame's last packet arriving to its release, for frames that waited for verdicts
    only: what a busy classifier lengthens."""
    settle_hold_s: deque[float] = field(default_factory=lambda: deque(maxlen=2048))
    """The same for frames that waited for a cut to settle (``GateConfig.settle_s`` by
    design, :attr:`relay.strict.gate.Release.settling`)."""


@dataclass(slots=True)
class ModerationMeter:
    """What all of a worker's moderated streams did since the last :meth:`drain`.

    Why beside the per-stream :class:`StreamStats`: an operator (and ``chatguard bench strict
    --target``) reads the gate's latency from the worker's load report, per interval and
    across streams, without the worker keeping per-stream histories for it.
    """

    hold_s: deque[float] = field(default_factory=lambda: deque(maxlen=8192))
    """Released frames' waits for their verdicts (:attr:`StreamStats.hold_s`). Bounded: a
    worker drains it every second, a process without a worker never does."""
    settle_hold_s: deque[float] = field(default_factory=lambda: deque(maxlen=8192))
    """Released frames' waits for a cut to settle (:attr:`StreamStats.settle_hold_s`)."""
    classified: int = 0
    no_verdict: int = 0
    released: int = 0
    withheld: int = 0

    def drain(self, streams: int, interval_s: float) -> ModerationLoad:
        """The interval's figures, in the load report's own message part; starts afresh."""
        hold, settle = sorted(self.hold_s), sorted(self.settle_hold_s)
        summary = ModerationLoad(
            streams=streams,
            classified_per_s=self.classified / interval_s,
            released_per_s=self.released / interval_s,
            withheld_per_s=self.withheld / interval_s,
            no_verdict=self.no_verdict,
            gate_p50_ms=_quantile_ms(hold, 0.50),
            gate_p99_ms=_quantile_ms(hold, 0.99),
            settle_p99_ms=_quantile_ms(settle, 0.99),
        )
        self.hold_s.clear()
        self.settle_hold_s.clear()
        self.classified = self.no_verdict = self.released = self.withheld = 0
        return summary


def _quantile_ms(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile of sorted seconds, in ms."""
    if not ordered:
        return None
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Moderator:
    """One per worker process: the model (one batcher) and the decode threads all moderated
    streams share, and the gate settings they use."""

    def __init__(
        self,
        batcher: AsyncBatcher,
        *,
        gate_config: GateConfig | None = None,
        decode_threads: int = 1,
        classify_timeout_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        prep = batcher.runner.manifest.preprocess
        if prep.colour_order != "rgb" or abs(prep.scale - 1 / 255) > 1e-9:
            raise ValueError("the YUV fast path feeds RGB scaled by 1/255 only")
        self.batcher = batcher
        self.gate_config = gate_config or GateConfig()
        self.classify_timeout_s = classify_timeout_s
        self.clock = clock
        self.executor = concurrent.futures.ThreadPoolExecutor(
            decode_threads, thread_name_prefix="chatguard-decode"
        )
        self.input_size = batcher.runner.input_size
        self.center = prep.letterbox == "center"
        self.meter = ModerationMeter()
        self.max_pixels = DEFAULT_MAX_PIXELS
        """Largest picture (width x height) a stream may send; larger keyframes are withheld."""
        self.decode_budget = DEFAULT_DECODE_BUDGET
        """Seconds of decoder time per second one stream may use (see ``decode_limits``)."""
        self.defences: Counter[str] = Counter()
        """Frames withheld for a limit, by limit, for the worker's defence counters."""
        self.decision_log = False
        """Streams opened from now on log every decision (``relay.strict.decision_log``)."""
        self._stream_numbers = itertools.count(1)
        self._streams: set[ModeratedStream] = set()

    @classmethod
    def default(
        cls, gate_config: GateConfig | None = None, classify_timeout_s: float = 1.0
    ) -> Moderator:
        """The default model (NudeNet 320n) on the manifest's engine (OpenVINO bf16 where the CPU
        has it, onnxruntime fp32 otherwise) with one inference thread (one worker per core).

        Stacked batches are capped at 4: OpenVINO's per-image gain is mostly there by B=4, and a
        held frame that arrives during a batch waits for all of it."""
        runner = open_runner()
        return cls(
            AsyncBatcher(runner, max_batch=4 if runner.batch_mode == "tensor" else 8),
            gate_config=gate_config,
            classify_timeout_s=classify_timeout_s,
        )

    def open_stream(
        self, codec_by_pt: Mapping[int, Codec], policy: ModerationPolicy, sink: StreamSink
    ) -> ModeratedStream:
        """Start moderating one incoming video stream (call from the event loop)."""
        stream = ModeratedStream(self, codec_by_pt, policy, sink)
        self._streams.add(stream)
        return stream

    def report(self, interval_s: float) -> ModerationLoad:
        """The last ``interval_s`` seconds of every stream, for the worker's load report."""
        return self.meter.drain(len(self._streams), interval_s)

    async def aclose(self) -> None:
        for s in list(self._streams):
            s.close()
        await self.batcher.aclose()
        self.executor.shutdown(wait=True)


@dataclass(slots=True)
class _Analysed:
    signature: Signature
    detail: float
    picture: av.VideoFrame


class ModeratedStream:
    """Gate, decoder and classifier requests of one moderated incoming video stream."""

    def __init__(
        self,
        moderator: Moderator,
        codec_by_pt: Mapping[int, Codec],
        policy: ModerationPolicy,
        sink: StreamSink,
    ) -> None:
        self._m = moderator
        self._codec_by_pt = dict(codec_by_pt)
        self.policy = policy
        self._sink = sink
        self.gate = ModerationGate(moderator.gate_config)
        self._decisions: DecisionLog | None = None
        if moderator.decision_log:
            self._decisions = DecisionLog(str(next(moderator._stream_numbers)), self.gate)
        self.stats = StreamStats()
        self._ids = itertools.count()
        self._depack: Depacketizer | None = None
        self._codec: Codec | None = None
        self._decoder: av.VideoCodecContext | None = None
        self._decoder_broken = True
        budget = moderator.decode_budget
        self._budget = DecodeBudget(budget, 2 * budget, moderator.clock())
        self._decode_s = 0.0
        """The last decode's CPU time (decode thread), charged to the budget after it."""
        self._over_limit: set[str] = set()
        """Limits this stream has hit (each logged once)."""
        self._backlog: deque[tuple[int, EncodedFrame]] = deque()
        self._held: dict[int, tuple[EncodedFrame, float]] = {}
        self._withheld = False
        self._pacer = ReleasePacer()
        self._outbox: deque[tuple[float, Sequence[bytes], bool, float]] = deque()
        """Released frames not yet sent: (due, packets, restart, arrival), in release order."""
        self._send_timer: asyncio.TimerHandle | None = None
        self._ssrc = 0
        self._tensors: list[NDArray[np.float32]] = []
        self._routine: dict[int, InferenceRequest] = {}
        """Periodic re-checks waiting in the batcher, by frame id, to hurry once a held frame
        waits for one (``ModerationGate.awaiting_cover``); a hurried one leaves it."""
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._worker = asyncio.get_running_loop().create_task(self._run())

    @property
    def blocked(self) -> bool:
        return self.gate.state is GateState.BLOCKED

    def on_packet(self, data: bytes, now: float) -> None:
        """One incoming RTP packet of the stream (hot path, synchronous)."""
        codec = self._codec_by_pt.get(data[1] & 0x7F)
        if codec is None:
            self.stats.dropped["unknown_pt"] += 1
            return
        if codec != self._codec:  # first packet, or the sender switched codecs
            self._codec = codec
            self._depack = Depacketizer(codec)
            self._decoder = None
            self._decoder_broken = True
        assert self._depack is not None
        self._ssrc = rtp.ssrc(data)
        for frame in self._depack.push(data):
            fid = next(self._ids)
            self._held[fid] = (frame, now)
            self._backlog.append((fid, frame))
            self._wake.set()

    def close(self) -> None:
        self._worker.cancel()
        if self._send_timer is not None:
            self._send_timer.cancel()
        self._outbox.clear()
        for t in self._tasks:
            t.cancel()
        self._held.clear()
        self._backlog.clear()
        self._m._streams.discard(self)

    # -- the per-stream worker: frames in order ---------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._backlog:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), TICK_S)
                except TimeoutError:
                    actions = self.gate.on_tick(self._m.clock())
                    if self._decisions is not None:
                        self._decisions.tick(actions)
                    self._apply(actions)
                continue
            fid, frame = self._backlog.popleft()
            try:
                await self._process(loop, fid, frame)
            except Exception as exc:  # a bug must not stop moderating (nor unblock anything)
                log.error("moderated stream: frame failed (%s)", type(exc).__name__)

    async def _process(
        self, loop: asyncio.AbstractEventLoop, fid: int, frame: EncodedFrame
    ) -> None:
        self.stats.frames += 1
        analysed: _Analysed | None = None
        if len(self._backlog) > MAX_BACKLOG:
            self._decoder_broken = True  # fell behind: skip to the next keyframe
        elif frame.complete and (frame.keyframe or not self._decoder_broken):
            limit = self._limit_hit(frame)
            if limit is not None:
                self._withhold_for(limit)
            else:
                try:
                    analysed = await loop.run_in_executor(self._m.executor, self._analyse, frame)
                except Exception as exc:  # e.g. an odd picture size: undecodable, fail closed
                    log.warning("moderated stream: analysis failed (%s)", type(exc).__name__)
                self._budget.spend(self._decode_s)
        self._decoder_broken = analysed is None
        frame.data = b""  # the bitstream copy is done with; only the packets wait in the gate
        sig, detail = (None, 0.0) if analysed is None else (analysed.signature, analysed.detail)
        actions = self.gate.on_frame(fid, frame.keyframe, sig, self._m.clock(), detail)
        request = next((a for a in actions if isinstance(a, Classify)), None)
        if analysed is not None and request is not None:
            self.stats.requested[request.reason] += 1
            try:
                await self._classify(fid, analysed.picture, request.reason != "periodic")
            except Exception as exc:
                log.warning("moderated stream: preprocessing failed (%s)", type(exc).__name__)
                actions += self.gate.on_no_verdict(fid, self._m.clock())
        if self._decisions is not None:
            self._decisions.frame(fid, frame.keyframe, sig, detail, actions)
        self._apply(actions)

    def _limit_hit(self, frame: EncodedFrame) -> str | None:
        """The decode limit this frame would break, if any (checked before decoding it)."""
        if frame.keyframe and self._codec is not None:
            size = picture_size(self._codec, frame.data)
            if size is not None and size[0] * size[1] > self._m.max_pixels:
                return "strict_oversize"
        if not self._budget.allows(self._m.clock()):
            return "strict_decode_budget"
        return None

    def _withhold_for(self, limit: str) -> None:
        """Fail closed: the frame is not judged, so neither it nor any after it until a
        keyframe within the limits is forwarded; counted, and logged once per stream."""
        self._m.defences[limit] += 1
        if limit not in self._over_limit:
            self._over_limit.add(limit)
            log.warning("moderated stream: withheld, over a decode limit (%s)", limit)

    def _analyse(self, frame: EncodedFrame) -> _Analysed | None:
        """Decode one frame and take its scene signature (decode thread)."""
        t0, cpu0 = time.perf_counter(), time.thread_time()
        self._decode_s = 0.0
        try:
            if self._decoder is None:
                assert self._codec is not None
                ctx = av.CodecContext.create(self._codec, "r")
                assert isinstance(ctx, av.VideoCodecContext)
                ctx.thread_count = 1  # one worker process per core
                # a header this relay misread still cannot make FFmpeg allocate a huge picture
                ctx.options = {"max_pixels": str(self._m.max_pixels)}
                self._decoder = ctx
            pictures = self._decoder.decode(av.Packet(frame.data))
        except av.FFmpegError as exc:
            log.debug("moderated stream: undecodable frame (%s)", type(exc).__name__)
            return None
        finally:
            # the decode thread's own CPU time: a busy machine must not push honest streams
            # over budget by making them wait for a core
            self._decode_s = time.thread_time() - cpu0
        if not pictures:
            return None
        pic = pictures[-1]
        if pic.format.name != "yuv420p":
            pic = pic.reformat(format="yuv420p")
        sig = np.empty(SIGNATURE_GRID, np.float32)
        luma = yuv_plane(pic, 0)
        luma_signature(luma, sig)
        detail = luma_detail(luma)
        self.stats.decode_s.append(time.perf_counter() - t0)
        return _Analysed(sig, detail, pic)

    def _letterbox(self, pic: av.VideoFrame, out: NDArray[np.float32]) -> None:
        """The model input for one picture, into a reused buffer (decode thread)."""
        t0 = time.perf_counter()
        lb = letterboxer(pic.width, pic.height, self._m.input_size, self._m.center)
        lb.run(yuv_plane(pic, 0), yuv_plane(pic, 1), yuv_plane(pic, 2), out)
        self.stats.preprocess_s.append(time.perf_counter() - t0)

    async def _classify(self, fid: int, pic: av.VideoFrame, held: bool) -> None:
        """Submit ``pic``; ``held``: the gate holds the stream until this verdict, so it goes
        before periodic re-checks of frames already released."""
        s = self._m.input_size
        tensor = self._tensors.pop() if self._tensors else np.empty((3, s, s), np.float32)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._m.executor, self._letterbox, pic, tensor)
        lb = Letterbox.for_frame(
            pic.width, pic.height, s, "center" if self._m.center else "top-left"
        )
        task = loop.create_task(self._verdict(fid, tensor, lb, held))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _verdict(
        self, fid: int, tensor: NDArray[np.float32], lb: Letterbox, held: bool
    ) -> None:
        t0 = time.perf_counter()
        request = InferenceRequest(tensor, lb, self.policy.thresholds)
        if not held:
            held = self.gate.awaiting_cover  # frames came meanwhile that wait for it
            if not held:
                self._routine[fid] = request
        try:
            dets = await asyncio.wait_for(
                self._m.batcher.submit(request, urgent=held), self._m.classify_timeout_s
            )
        except Exception as exc:  # time-out or model error: no verdict, fail closed
            self.stats.no_verdict += 1
            self._m.meter.no_verdict += 1
            log.warning("moderation: no verdict (%s)", type(exc).__name__)
            actions = self.gate.on_no_verdict(fid, self._m.clock())
            if self._decisions is not None:
                self._decisions.no_verdict(fid, actions)
            self._apply(actions)
            return  # the tensor may still be read by a late run: do not reuse it
        finally:
            self._routine.pop(fid, None)
        self.stats.classify_s.append(time.perf_counter() - t0)
        self.stats.classified += 1
        self._m.meter.classified += 1
        self._tensors.append(tensor)
        v = self.policy.verdict(dets)
        actions = self.gate.on_verdict(fid, v.finding, v.label, v.score, self._m.clock())
        if self._decisions is not None:
            self._decisions.verdict(fid, v.finding, v.label, v.score, actions)
        self._apply(actions)

    def _apply(self, actions: list[Action]) -> None:
        now = self._m.clock()
        for a in actions:
            if isinstance(a, Release):
                frame, arrival = self._held.pop(a.frame_id)
                stats, meter = self.stats, self._m.meter
                stats.released += 1
                meter.released += 1
                waited = now - arrival
                if a.settling:
                    stats.settle_hold_s.append(waited)
                    meter.settle_hold_s.append(waited)
                else:
                    stats.hold_s.append(waited)
                    meter.hold_s.append(waited)
                due = self._pacer.due(arrival, now)
                self._outbox.append((due, frame.packets, self._withheld, arrival))
                self._withheld = False
                self._send_due()
            elif isinstance(a, Drop):
                self._held.pop(a.frame_id, None)
                self.stats.dropped[a.reason] += 1
                self._m.meter.withheld += 1
                self._withheld = True
            elif isinstance(a, RequestKeyframe):
                self._sink.request_keyframe(self._ssrc, now)
            elif isinstance(a, Blocked):
                log.info("moderation: blocked (%s %.2f)", a.label, a.score)
                self._sink.moderation_event("blocked", a.label, a.score)
            elif isinstance(a, Resumed):
                log.info("moderation: resumed")
                self._sink.moderation_event("resumed", "", 0.0)
        if self._routine and self.gate.awaiting_cover:
            # a frame held now waits for a periodic re-check's verdict to cover it (measured:
            # one starved behind the other direction's held frames, and half a second of
            # frames behind it was dropped for it); after the gate's actions, so that nothing
            # here can keep a block's strike from being told
            hurried = [fid for fid, r in self._routine.items() if self._m.batcher.hurry(r)]
            for fid in hurried:  # urgent for good: not scanned for again on every frame
                del self._routine[fid]

    def _send_due(self) -> None:
        """Hand the released frames that are due to the hub; wake up for the next one."""
        now = self._m.clock()
        outbox = self._outbox
        while outbox and outbox[0][0] <= now:
            _, packets, restart, arrival = outbox.popleft()
            self._sink.release(packets, restart, now, now - arrival)
        if outbox and self._send_timer is None:
            self._send_timer = asyncio.get_running_loop().call_later(
                outbox[0][0] - now, self._on_send_timer
            )

    def _on_send_timer(self) -> None:
        self._send_timer = None
        self._send_due()


def yuv_plane(pic: av.VideoFrame, i: int) -> NDArray[np.uint8]:
    """A zero-copy view of one plane without PyAV's row padding."""
    p = pic.planes[i]
    rows = np.frombuffer(memoryview(p), np.uint8).reshape(p.height, p.line_size)
    return rows[:, : p.width]
