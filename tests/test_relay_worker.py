"""The worker's half of readiness: told that a strict route is in force, it loads the model and
runs it once off its event loop, and says in its load reports whether it can moderate."""

from __future__ import annotations

from pathlib import Path

import pytest

import models.inference
from models.manifest import default_manifest, parse_manifest
from relay import control as rc
from relay.worker import RelayWorker


def configure(strict: bool) -> rc.Configure:
    return rc.Configure(
        block=None,
        verdict_ttl_s=1.0,
        min_classifications_per_s=2.0,
        mute_audio_while_blocked=False,
        strict=strict,
    )


async def prepared(strict: bool) -> RelayWorker:
    worker = RelayWorker("ws://127.0.0.1:9/relay", "token", "w1", 10)
    worker._configure(configure(strict))
    if worker._preparing is not None:
        await worker._preparing
    return worker


async def test_no_strict_route_no_model() -> None:
    worker = await prepared(strict=False)
    assert worker.moderation_ready is None and worker._moderator is None


@pytest.mark.timeout(60)
async def test_strict_route_loads_and_tests_the_model() -> None:
    worker = await prepared(strict=True)
    assert worker.moderation_ready is True and worker.moderation_error == ""
    assert worker._moderator is not None
    await worker._moderator.aclose()


async def test_a_missing_model_file_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundled = default_manifest()
    assert bundled.source is not None
    text = Path(bundled.source).read_text(encoding="utf-8")
    head = text[: text.index("[weights]")]
    broken = tmp_path / "broken.toml"
    broken.write_text(head + '[weights]\npath = "missing.onnx"\n' + text[text.index("[input]") :])
    monkeypatch.setattr(models.inference, "default_manifest", lambda: parse_manifest(
        broken.read_text(), source=str(broken)
    ))  # fmt: skip
    worker = await prepared(strict=True)
    assert worker.moderation_ready is False and worker._moderator is None
    assert "ManifestError" in worker.moderation_error
    assert str(tmp_path / "missing.onnx") in worker.moderation_error
