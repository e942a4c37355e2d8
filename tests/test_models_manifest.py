"""Manifest loading and the errors a bad manifest gives (file, key and problem named)."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.manifest import ManifestError, default_manifest, load_manifest, parse_manifest

GOOD = """
name = "tiny"
labels = ["a", "b"]

[weights]
path = "tiny.onnx"

[input]
size = 64

[preprocess]
colour_order = "rgb"
letterbox = "center"

[decode]
kind = "classifier"
activation = "softmax"
"""


def write(tmp_path: Path, text: str, weights: bool = True) -> Path:
    if weights:
        (tmp_path / "tiny.onnx").write_bytes(b"not really onnx")
    p = tmp_path / "m.toml"
    p.write_text(text)
    return p


def test_default_manifest_is_nudenet_320n() -> None:
    m = default_manifest()
    assert m.name == "nudenet-320n"
    assert m.license == "AGPL-3.0"
    assert m.input.size == 320 and m.input.layout == "NCHW"
    assert m.preprocess.colour_order == "rgb"
    assert m.preprocess.letterbox == "top-left"
    assert m.preprocess.scale == 1 / 255  # exactly, so the tensor is bit-identical
    assert m.decode.kind == "yolov8"
    assert (m.decode.score_threshold, m.decode.nms_score_threshold) == (0.2, 0.25)
    assert m.decode.nms_iou_threshold == 0.45
    assert len(m.labels) == 18 and m.labels[1] == "FACE_FEMALE"
    assert (m.runtime.engine, m.runtime.precision, m.runtime.recheck_margin) == (
        "auto",
        "auto",
        0.05,
    )
    w = m.weights_location()
    assert w.name == "320n.onnx" and w.is_file() and w.parent.name == "nudenet"


def test_load_by_name_and_by_path_agree() -> None:
    by_name = load_manifest("nudenet-320n")
    assert by_name.source is not None
    assert load_manifest(Path(by_name.source)) == by_name
    assert load_manifest(by_name.source) == by_name


def test_labels_match_the_model_metadata() -> None:
    """The manifest's label order is the order the ONNX file itself records."""
    import ast

    import onnxruntime as ort

    m = default_manifest()
    sess = ort.InferenceSession(str(m.weights_location()), providers=["CPUExecutionProvider"])
    names = ast.literal_eval(sess.get_modelmeta().custom_metadata_map["names"])
    assert [names[i] for i in range(len(names))] == m.labels


def test_weights_path_is_relative_to_the_manifest(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path, GOOD))
    assert m.weights_location() == tmp_path / "tiny.onnx"
    assert m.decode.kind == "classifier" and m.preprocess.letterbox == "center"


def errors(tmp_path: Path, text: str, weights: bool = True) -> str:
    p = write(tmp_path, text, weights)
    with pytest.raises(ManifestError) as info:
        load_manifest(p)
    msg = str(info.value)
    assert str(p) in msg, msg  # every error names the file
    return msg


def test_missing_key(tmp_path: Path) -> None:
    msg = errors(tmp_path, GOOD.replace('labels = ["a", "b"]', ""))
    assert "missing required field `labels`" in msg


def test_missing_nested_key(tmp_path: Path) -> None:
    msg = errors(tmp_path, GOOD.replace("size = 64", ""))
    assert "missing required field `size`" in msg and "$.input" in msg


def test_wrong_type(tmp_path: Path) -> None:
    msg = errors(tmp_path, GOOD.replace("size = 64", 'size = "64"'))
    assert "Expected `int`, got `str`" in msg and "$.input.size" in msg


def test_out_of_range(tmp_path: Path) -> None:
    msg = errors(tmp_path, GOOD.replace('activation = "softmax"', "score_threshold = 1.5"))
    assert "$.decode.score_threshold" in msg


def test_unknown_decode_kind(tmp_path: Path) -> None:
    msg = errors(tmp_path, GOOD.replace('kind = "classifier"', 'kind = "ssd"'))
    assert "'ssd'" in msg and "$.decode.kind" in msg


def test_runtime_section(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path, GOOD))
    assert (m.runtime.engine, m.runtime.precision) == ("auto", "auto")  # optional section
    ov = GOOD + '\n[runtime]\nengine = "openvino"\nprecision = "fp32"\nrecheck_margin = 0.1\n'
    m = load_manifest(write(tmp_path, ov))
    assert (m.runtime.engine, m.runtime.precision, m.runtime.recheck_margin) == (
        "openvino",
        "fp32",
        0.1,
    )
    msg = errors(tmp_path, GOOD + '\n[runtime]\nengine = "onnxruntime"\nprecision = "bf16"\n')
    assert "runtime.precision: onnxruntime runs fp32 only" in msg
    msg = errors(tmp_path, GOOD + '\n[runtime]\nengine = "tensorrt"\n')
    assert "'tensorrt'" in msg and "$.runtime.engine" in msg
    msg = errors(tmp_path, GOOD + "\n[runtime]\nrecheck_margin = -0.01\n")
    assert "$.runtime.recheck_margin" in msg


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    msg = errors(tmp_path, GOOD.replace("size = 64", "size = 64\nsise = 64"))
    assert "unknown field `sise`" in msg and "$.input" in msg


def test_missing_weights_file(tmp_path: Path) -> None:
    msg = errors(tmp_path, GOOD, weights=False)
    assert "weights.path" in msg and "file not found" in msg and "tiny.onnx" in msg


def test_missing_package_resource(tmp_path: Path) -> None:
    text = GOOD.replace('path = "tiny.onnx"', 'package = "nudenet"\nresource = "640m.onnx"')
    msg = errors(tmp_path, text)
    assert "weights.resource" in msg and "640m.onnx" in msg and "nudenet" in msg


def test_missing_package(tmp_path: Path) -> None:
    text = GOOD.replace('path = "tiny.onnx"', 'package = "no_such_pkg_x"\nresource = "a.onnx"')
    msg = errors(tmp_path, text)
    assert "weights.package" in msg and "no_such_pkg_x" in msg


def test_weights_need_exactly_one_source(tmp_path: Path) -> None:
    text = GOOD.replace('path = "tiny.onnx"', 'path = "tiny.onnx"\npackage = "nudenet"')
    assert "weights" in errors(tmp_path, text)
    text = GOOD.replace('path = "tiny.onnx"', 'package = "nudenet"')
    assert "weights.resource" in errors(tmp_path, text)


def test_invalid_toml(tmp_path: Path) -> None:
    assert "invalid TOML" in errors(tmp_path, GOOD + "\nname = ")


def test_unreadable_and_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read manifest"):
        load_manifest(tmp_path / "absent.toml")
    with pytest.raises(ManifestError, match="no bundled manifest"):
        load_manifest("no-such-model")


def test_parse_without_weights_check() -> None:
    m = parse_manifest(GOOD, source=None)
    assert m.name == "tiny" and m.source is None
