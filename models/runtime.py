"""Pick the inference engine and precision for a manifest: ``[runtime]`` made concrete.

Why a module of its own: the choice depends on the machine (is ``openvino`` installed, does
the CPU compute bf16?) and must not import OpenVINO where it is not used (it is an optional
extra). ``auto`` takes OpenVINO bf16 where both hold (2.3-3x faster, decisions kept fp32's by
the re-check), onnxruntime fp32 otherwise.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

from models.inference import BatchMode, ModelRunner, Precision, Runner
from models.manifest import Manifest, default_manifest

__all__ = ["Engine", "open_runner", "resolve"]

Engine = Literal["onnxruntime", "openvino"]


def _openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def _openvino_bf16() -> bool:
    if not _openvino_installed():
        return False
    from models.openvino_runner import cpu_has_bf16

    return cpu_has_bf16()


def resolve(manifest: Manifest) -> tuple[Engine, Precision]:
    """The engine and precision ``manifest.runtime`` asks for on this machine."""
    rt = manifest.runtime
    where = manifest.source or "<manifest>"
    if rt.engine == "onnxruntime":
        return "onnxruntime", "fp32"  # the manifest check refused onnxruntime + bf16
    if rt.engine == "openvino":
        if not _openvino_installed():
            raise RuntimeError(
                f"{where}: runtime.engine = openvino, but the openvino package is not "
                "installed (pip install 'chatguard[openvino]')"
            )
        if rt.precision != "auto":
            return "openvino", rt.precision
        return "openvino", "bf16" if _openvino_bf16() else "fp32"
    if rt.precision != "fp32" and _openvino_bf16():
        return "openvino", "bf16"
    return "onnxruntime", "fp32"


def open_runner(manifest: Manifest | None = None, *, batch_mode: BatchMode | None = None) -> Runner:
    """A runner for ``manifest`` (default: the bundled one) with one inference thread (the relay
    runs one worker per core); a bf16 runner comes with its fp32 onnxruntime ``reference``.

    ``batch_mode`` defaults to the engine's better one on CPU: "loop" for onnxruntime (flat
    per-image cost), "tensor" for OpenVINO (cheaper per image in a batch).
    """
    m = manifest if manifest is not None else default_manifest()
    engine, precision = resolve(m)
    if engine == "onnxruntime":
        return ModelRunner(m, intra_op_threads=1, batch_mode=batch_mode or "loop")
    from models.openvino_runner import OpenVinoRunner

    return OpenVinoRunner(
        m,
        precision=precision,
        batch_mode=batch_mode or "tensor",
        reference=ModelRunner(m, intra_op_threads=1) if precision == "bf16" else None,
    )
