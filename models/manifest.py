"""Model manifests: a TOML file that says how to run and decode one ONNX model.

Why a manifest rather than constants in code: the relay's moderation model is
an operator's choice (and the default, NudeNet's 320n detector, is AGPL-3.0
licensed weights that some deployments will want to swap out). Everything the
pipeline needs to feed the network and to read its output -- input size,
colour order, letterbox placement, decode kind and decode parameters -- lives
in the manifest, so swapping the model is a config change. Per-label *block*
thresholds are policy and deliberately do not live here.

Parsing is tomllib + msgspec Structs, so a bad manifest fails at load time with
a message that names the file, the key path and the problem (e.g.
``bad.toml: Expected `int`, got `str` - at `$.input.size```), instead of
failing later inside onnxruntime with a shape error.
"""

from __future__ import annotations

import importlib.resources
import tomllib
from pathlib import Path
from typing import Annotated, Literal

import msgspec

__all__ = [
    "DecodeSpec",
    "InputSpec",
    "Manifest",
    "ManifestError",
    "PreprocessSpec",
    "RuntimeSpec",
    "WeightsSpec",
    "default_manifest",
    "load_manifest",
    "parse_manifest",
]

DEFAULT_MANIFEST_NAME = "nudenet-320n"

Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class ManifestError(ValueError):
    """A manifest could not be read, parsed, validated or its weights found."""


class WeightsSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where the ONNX file is: ``path`` (relative to the manifest) or a package resource."""

    path: str | None = None
    package: str | None = None
    resource: str | None = None


class InputSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Square network input of ``size`` x ``size`` pixels."""

    size: Annotated[int, msgspec.Meta(gt=0, le=4096)]
    layout: Literal["NCHW"] = "NCHW"


class PreprocessSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a uint8 frame becomes the float input tensor."""

    colour_order: Literal["rgb", "bgr"] = "rgb"
    scale: Annotated[float, msgspec.Meta(gt=0.0)] = 1.0 / 255.0
    letterbox: Literal["top-left", "center"] = "top-left"


class DecodeSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How to read the output tensor.

    ``yolov8``: output ``[B, 4 + C, N]`` rows of cx, cy, w, h and C class scores.
    ``classifier``: output ``[B, C]`` of logits/probabilities; ``activation`` says
    which (``none`` when the graph already ends in softmax/sigmoid).
    """

    kind: Literal["yolov8", "classifier"]
    score_threshold: Probability = 0.2
    nms_score_threshold: Probability = 0.25
    nms_iou_threshold: Probability = 0.45
    activation: Literal["none", "softmax", "sigmoid"] = "none"


class RuntimeSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Which inference engine runs the model, at which precision.

    ``engine = "auto"`` picks OpenVINO where it is installed and the CPU computes in bf16
    (2.3-3x faster than onnxruntime fp32 on this project's Xeon, see ``docs/models.md``),
    onnxruntime otherwise. ``precision = "auto"`` is bf16 where the engine and CPU support
    it, fp32 otherwise; onnxruntime runs fp32 only.

    bf16 moves scores by up to ~0.02, enough to flip a decision near a threshold, so a
    bf16 result whose score for a blocked label lies within ``recheck_margin`` of that
    label's threshold is computed again in fp32 (onnxruntime) before anyone acts on it.
    """

    engine: Literal["auto", "onnxruntime", "openvino"] = "auto"
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    recheck_margin: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.05


class Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A validated model manifest. ``source`` is set by :func:`load_manifest`."""

    name: str
    weights: WeightsSpec
    input: InputSpec
    preprocess: PreprocessSpec
    decode: DecodeSpec
    labels: Annotated[list[str], msgspec.Meta(min_length=1)]
    license: str | None = None
    runtime: RuntimeSpec = RuntimeSpec()
    source: str | None = None

    @property
    def input_size(self) -> int:
        return self.input.size

    def weights_location(self) -> Path:
        """Resolve the weights to a filesystem path, or raise ManifestError naming the key."""
        where = self.source or "<manifest>"
        w = self.weights
        if w.path is not None:
            base = Path(self.source).parent if self.source else Path.cwd()
            p = Path(w.path)
            p = p if p.is_absolute() else base / p
            if not p.is_file():
                raise ManifestError(f"{where}: weights.path: file not found: {p}")
            return p
        assert w.package is not None and w.resource is not None  # enforced by _check
        try:
            traversable = importlib.resources.files(w.package).joinpath(w.resource)
        except ModuleNotFoundError as exc:
            raise ManifestError(
                f"{where}: weights.package: package {w.package!r} is not installed"
            ) from exc
        if not traversable.is_file():
            raise ManifestError(
                f"{where}: weights.resource: {w.resource!r} not found in package {w.package!r}"
            )
        # Installed wheels are plain directories; a zipped package would need
        # as_file() extraction, which we do not support (onnxruntime mmaps the file).
        if not isinstance(traversable, Path):
            raise ManifestError(
                f"{where}: weights.resource: package {w.package!r} is not on the filesystem"
            )
        return traversable


def _check(manifest: Manifest, where: str) -> None:
    """Cross-field rules msgspec cannot express."""
    w = manifest.weights
    has_path = w.path is not None
    has_res = w.package is not None or w.resource is not None
    if has_path == has_res:
        raise ManifestError(
            f"{where}: weights: give either `path` or both `package` and `resource`"
        )
    if has_res and (w.package is None or w.resource is None):
        missing, given = ("package", "resource") if w.package is None else ("resource", "package")
        raise ManifestError(f"{where}: weights.{missing}: required with weights.{given}")
    if len(set(manifest.labels)) != len(manifest.labels):
        raise ManifestError(f"{where}: labels: duplicate label names")
    if manifest.runtime.engine == "onnxruntime" and manifest.runtime.precision == "bf16":
        raise ManifestError(f"{where}: runtime.precision: onnxruntime runs fp32 only")


def parse_manifest(text: str | bytes, source: str | None = None) -> Manifest:
    """Parse and validate manifest TOML text; ``source`` names it in errors and anchors paths."""
    where = source or "<manifest>"
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{where}: invalid TOML: {exc}") from exc
    if "source" in raw:
        raise ManifestError(f"{where}: source: reserved key, not allowed in a manifest")
    try:
        manifest = msgspec.convert(raw, Manifest)
    except msgspec.ValidationError as exc:
        raise ManifestError(f"{where}: {exc}") from exc
    manifest = msgspec.structs.replace(manifest, source=source)
    _check(manifest, where)
    return manifest


def load_manifest(path_or_name: str | Path, *, check_weights: bool = True) -> Manifest:
    """Load a manifest from a file path, or by name from the bundled ``models/manifests``.

    A ``Path``, or a string containing a path separator or ending in ``.toml``,
    is a file; anything else is a bundled manifest name such as ``"nudenet-320n"``.
    With ``check_weights`` the weights are resolved now so that a missing file
    is reported at startup, not at the first frame.
    """
    s = str(path_or_name)
    if isinstance(path_or_name, Path) or s.endswith(".toml") or "/" in s or "\\" in s:
        path = Path(path_or_name)
    else:
        path = Path(str(importlib.resources.files("models").joinpath("manifests", f"{s}.toml")))
        if not path.is_file():
            raise ManifestError(f"{s}: no bundled manifest with that name ({path})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read manifest: {exc.strerror or exc}") from exc
    manifest = parse_manifest(data, source=str(path))
    if check_weights:
        manifest.weights_location()
    return manifest


def default_manifest() -> Manifest:
    """The bundled default: NudeNet 320n (weights AGPL-3.0, shipped in the nudenet wheel)."""
    return load_manifest(DEFAULT_MANIFEST_NAME)
