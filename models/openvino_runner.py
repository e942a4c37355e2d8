"""OpenVINO engine: the same ONNX file, computed in bf16 on CPUs that have it (AVX512_BF16, AMX).

Why: on this project's Xeon one core classifies a 320x320 frame 2.3-3x faster than onnxruntime
fp32 at batch 1 and ~3.2x per image at batch 4-8 (``bench/model_bench.py``), which is what
moderating more streams per worker costs. bf16 moves scores by up to ~0.02, so results near
a threshold are re-computed in fp32 (``reference``, see :mod:`models.recheck`).

Why these settings: one inference thread and one stream, no CPU pinning (the relay runs one
worker process per core, and its event loop and decode thread share that core; pinned
threads would fight the other workers); the precision is always set explicitly, since
OpenVINO's default on a bf16 CPU is bf16 -- fp32 has to be asked for. Two compiled models:
a static batch-1 one (~15% faster than the dynamic one at batch 1) and one with a dynamic
batch dimension for stacked batches ("tensor" mode, the default: per-image cost falls with B).

Imported only by :func:`models.runtime.open_runner` when the manifest picks OpenVINO: the
``openvino`` package is an optional extra (``pip install 'chatguard[openvino]'``).
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.inference import BatchMode, Precision, Runner
from models.manifest import Manifest, default_manifest

# ``import openvino`` initialises Intel's telemetry unless the user opted out: it writes
# ~/intel/openvino_ga_cid and ~/intel/stats and sends a usage event to Google Analytics. A
# relay that moderates private video must do neither. OpenVINO's tools fall back to a no-op
# stub when ``openvino_telemetry`` cannot be imported; a None entry in sys.modules makes it so.
sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]

import openvino as ov  # noqa: E402

__all__ = ["OpenVinoRunner", "cpu_has_bf16"]

_OV_PRECISION: dict[Precision, str] = {"bf16": "bf16", "fp32": "f32"}


def cpu_has_bf16(core: Any = None) -> bool:
    """Whether OpenVINO's CPU plugin computes bf16 natively on this machine."""
    core = core if core is not None else ov.Core()
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class _Compiled:
    """One compiled model and its one infer request; a lock makes the pair thread-safe."""

    def __init__(self, compiled: Any) -> None:
        self.request = compiled.create_infer_request()
        self.lock = threading.Lock()

    def run(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        with self.lock:
            self.request.infer({0: x}, share_inputs=True)
            # a copy: the request's output buffer is overwritten by the next run
            return np.array(self.request.get_output_tensor(0).data, dtype=np.float32)


class OpenVinoRunner(Runner):
    """The manifest's model compiled by OpenVINO for the CPU at ``precision``."""

    engine = "openvino"

    def __init__(
        self,
        manifest: Manifest | None = None,
        *,
        precision: Precision = "bf16",
        threads: int = 1,
        batch_mode: BatchMode = "tensor",
        reference: Runner | None = None,
    ) -> None:
        if threads < 1:
            raise ValueError("threads must be >= 1")
        m = manifest if manifest is not None else default_manifest()
        core = ov.Core()
        if precision == "bf16" and not cpu_has_bf16(core):
            raise RuntimeError("OpenVINO: this CPU has no bf16 (AVX512_BF16 or AMX)")
        config = {
            "INFERENCE_PRECISION_HINT": _OV_PRECISION[precision],
            "INFERENCE_NUM_THREADS": threads,
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
            "ENABLE_CPU_PINNING": False,
        }
        model = core.read_model(str(m.weights_location()))
        shape = [d.get_length() if d.is_static else -1 for d in model.inputs[0].get_partial_shape()]
        super().__init__(m, batch_mode, shape)
        s = self.input_size
        self.precision = precision
        self.reference = reference
        model.reshape([1, 3, s, s])
        self._single = _Compiled(core.compile_model(model, "CPU", config))
        self._batched = self._single
        if not self.fixed_batch and self.batch_mode == "tensor":
            model.reshape([-1, 3, s, s])
            self._batched = _Compiled(core.compile_model(model, "CPU", config))

    def _run(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        return (self._single if x.shape[0] == 1 else self._batched).run(x)
