"""Synchronous model runners: tensor batch in, detections out.

:class:`Runner` is what the batcher and the moderation layer use, whatever engine computes the
network: it checks shapes, runs batches (looped or stacked), decodes detections per the
manifest and reports per-label score peaks. :class:`ModelRunner` is the onnxruntime engine
(fp32, the reference); ``models.openvino_runner`` holds the OpenVINO one (bf16), and
``models.runtime.open_runner`` picks one from the manifest's ``[runtime]``.

Why these onnxruntime SessionOptions:

* ``intra_op_num_threads`` defaults to 1: the relay runs one worker process per
  core, so a second ORT thread per session would only fight the other workers
  (and the worker's own event loop) for the same cores. ``inter_op`` is 1 and
  execution is sequential: the YOLOv8 graph is a chain, there is no
  parallelism between nodes worth a thread pool.
* ``allow_spinning`` is off by default: ORT's pool threads otherwise busy-wait
  after each op, burning a core the event loop needs. It only matters with
  ``intra_op_num_threads > 1``.
* ``ORT_ENABLE_ALL`` graph optimisation (fusions and layout transforms) --
  ``bench/model_bench.py`` measures what it buys.

``session.run`` releases the GIL for the whole inference, so running it in a
worker thread (see :mod:`models.batching`) keeps the event loop responsive.

The default model (NudeNet 320n) has weights licensed AGPL-3.0; the manifest
records this and the README says so.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Literal

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from models.detections import Detection, classifier_detections, decode_classifier, decode_yolov8
from models.letterbox import Letterbox
from models.manifest import Manifest, default_manifest

__all__ = ["BatchMode", "GraphOptimization", "ModelRunner", "Precision", "Runner"]

GraphOptimization = Literal["disable", "basic", "extended", "all"]
BatchMode = Literal["loop", "tensor"]
Precision = Literal["bf16", "fp32"]

_OPT_LEVELS: dict[str, ort.GraphOptimizationLevel] = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session_options(
    intra_op_threads: int = 1,
    graph_optimization: GraphOptimization = "all",
    *,
    allow_spinning: bool = False,
) -> ort.SessionOptions:
    """SessionOptions tuned for one-worker-per-core CPU inference (see module docstring)."""
    if intra_op_threads < 1:
        raise ValueError("intra_op_threads must be >= 1")
    so = ort.SessionOptions()
    so.intra_op_num_threads = intra_op_threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = _OPT_LEVELS[graph_optimization]
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    so.log_severity_level = 3  # ORT warns about unused initialisers on every load
    return so


class Runner(ABC):
    """One model, one engine: shapes checked, batches run, outputs decoded. Thread-safe.

    ``batch_mode`` says how a batch of B images is run: ``"loop"``, B back-to-back batch-1
    runs (each caller of :class:`~models.batching.AsyncBatcher` is answered as soon as its own
    image is done), or ``"tensor"``, one run on the stacked (B, 3, S, S) tensor (for engines
    whose per-image cost falls with B). A graph whose batch dimension is the literal 1 forces
    "loop".

    ``reference`` is None when this runner's scores are fp32's; otherwise it is the fp32
    runner that re-computes a result whose scores lie too near a threshold to trust
    (within ``recheck_margin``; see :mod:`models.recheck`).
    """

    engine: str
    precision: Precision = "fp32"
    reference: Runner | None = None

    def __init__(
        self, manifest: Manifest | None, batch_mode: BatchMode, input_shape: Sequence[object]
    ) -> None:
        self.manifest = manifest if manifest is not None else default_manifest()
        self.labels: list[str] = list(self.manifest.labels)
        self.input_shape: list[object] = list(input_shape)
        self.fixed_batch: bool = self.input_shape[0] == 1
        self.batch_mode: BatchMode = "loop" if self.fixed_batch else batch_mode
        self.recheck_margin: float = self.manifest.runtime.recheck_margin
        size = self.manifest.input_size
        for dim, want in zip(self.input_shape[1:], (3, size, size), strict=True):
            if isinstance(dim, int) and dim not in (-1, want):
                raise ValueError(
                    f"{self.manifest.source}: model input {self.input_shape} does not match "
                    f"manifest input.size={size} (NCHW)"
                )

    @property
    def input_size(self) -> int:
        return self.manifest.input_size

    @property
    def name(self) -> str:
        """Engine and precision, for logs and reports (e.g. ``openvino bf16``)."""
        return f"{self.engine} {self.precision}"

    def run_raw(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """Raw output for a (B, 3, S, S) float32 batch: (B, 4 + C, N) or (B, C)."""
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        s = self.input_size
        if x.ndim != 4 or x.shape[1:] != (3, s, s):
            raise ValueError(f"expected a (B, 3, {s}, {s}) batch, got {x.shape}")
        if self.batch_mode == "loop" and x.shape[0] != 1:
            outs = [self._run(x[i : i + 1]) for i in range(x.shape[0])]
            return np.concatenate(outs, axis=0)
        return self._run(x)

    @abstractmethod
    def _run(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        """The engine's output for a checked, contiguous (B, 3, S, S) batch."""

    def decode(self, output: NDArray[np.float32], letterbox: Letterbox) -> list[Detection]:
        """Decode one image's raw output according to the manifest."""
        d = self.manifest.decode
        if d.kind == "yolov8":
            return decode_yolov8(
                output,
                letterbox,
                self.labels,
                score_threshold=d.score_threshold,
                nms_score_threshold=d.nms_score_threshold,
                nms_iou_threshold=d.nms_iou_threshold,
            )
        scores = decode_classifier(output, self.labels, activation=d.activation)
        return classifier_detections(scores, letterbox, d.score_threshold)

    def peaks(self, output: NDArray[np.float32]) -> NDArray[np.float32]:
        """Each label's highest score in one image's raw output, shape (C,), before any
        candidate threshold, arg-max or NMS: what a decision at any threshold can depend on."""
        d = self.manifest.decode
        if d.kind == "yolov8":
            return np.asarray(output[4:].max(axis=1), dtype=np.float32)
        scores = decode_classifier(output, self.labels, activation=d.activation)
        return np.fromiter(scores.values(), np.float32, len(self.labels))

    def infer_one(self, tensor: NDArray[np.float32], letterbox: Letterbox) -> list[Detection]:
        """Run and decode one (3, S, S) tensor."""
        return self.decode(self.run_raw(tensor[None])[0], letterbox)

    def infer(
        self,
        batch: NDArray[np.float32],
        letterboxes: Sequence[Letterbox] | None = None,
    ) -> list[list[Detection]]:
        """Run and decode a batch. Without ``letterboxes`` boxes are in input pixels."""
        out = self.run_raw(batch)
        n = out.shape[0]
        if letterboxes is None:
            letterboxes = [Letterbox.identity(self.input_size)] * n
        if len(letterboxes) != n:
            raise ValueError(f"{len(letterboxes)} letterboxes for a batch of {n}")
        return [self.decode(out[i], letterboxes[i]) for i in range(n)]


class ModelRunner(Runner):
    """One onnxruntime InferenceSession for one manifest, fp32: the reference engine.

    On CPU ``batch_mode = "loop"`` (the default) is as fast or faster than one batched run:
    per-image cost is flat in B (~15 ms at 320x320, 1 thread) and a B=4 tensor run measured
    ~6% *slower* than 4 single runs (bigger activations fall out of cache).
    """

    engine = "onnxruntime"

    def __init__(
        self,
        manifest: Manifest | None = None,
        *,
        intra_op_threads: int = 1,
        graph_optimization: GraphOptimization = "all",
        allow_spinning: bool = False,
        batch_mode: BatchMode = "loop",
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        m = manifest if manifest is not None else default_manifest()
        self.session = ort.InferenceSession(
            str(m.weights_location()),
            sess_options=session_options(
                intra_op_threads, graph_optimization, allow_spinning=allow_spinning
            ),
            providers=list(providers),
        )
        inp = self.session.get_inputs()[0]
        self.input_name: str = inp.name
        self.output_name: str = self.session.get_outputs()[0].name
        super().__init__(m, batch_mode, inp.shape)

    def _run(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        (out,) = self.session.run([self.output_name], {self.input_name: x})
        return np.asarray(out, dtype=np.float32)
