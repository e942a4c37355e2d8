"""Without the ``bench`` extra, a workload that needs it says so in one line, before it starts.

The missing library is simulated in a child process (``sys.modules[name] = None`` makes its
import fail as an absent one does), so the test runs where the extra is installed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.extra import INSTALL, missing_extra, require

RUN_WITHOUT = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
from chatguard import cli
sys.exit(cli.main(sys.argv[2:]))
"""


def run_without(modules: str, *argv: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", RUN_WITHOUT, modules, *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("missing", "argv"),
    [
        ("skimage", ["strict", "--pairs", "1"]),  # the clip is made from its photographs
        ("cv2", ["strict", "--service", "--pairs", "2"]),
        ("matplotlib", ["signaling", "--pairs", "1", "--plot", "{tmp}/s.png"]),
        ("matplotlib", ["relay", "--pairs", "1", "--plot", "{tmp}/r.png"]),
    ],
)
def test_a_missing_extra_is_one_line_naming_it_and_nothing_runs(
    missing: str, argv: list[str], tmp_path: Path
) -> None:
    argv = [a.format(tmp=tmp_path) for a in argv]
    done = run_without(missing, "bench", *argv, "--json", str(tmp_path / "out.json"))
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"chatguard bench {argv[0]} needs the bench extra ({missing} is not installed): {INSTALL}\n"
    )
    assert done.stdout == "" and not (tmp_path / "out.json").exists()


def test_the_product_and_the_other_workloads_run_without_it(tmp_path: Path) -> None:
    done = run_without("skimage,cv2,matplotlib", "bench", "relay", "--pairs", "0")
    assert done.returncode == 2 and "--pairs" in done.stderr  # got as far as its own options
    assert "extra" not in done.stderr
    assert run_without("skimage,cv2,matplotlib", "--help").returncode == 0


def test_only_the_extras_modules_are_answered_with_the_extra() -> None:
    assert missing_extra(ModuleNotFoundError("x", name="skimage.data")) == "skimage"
    assert missing_extra(ModuleNotFoundError("x", name="onnxruntime")) is None  # a broken install
    require("matplotlib")  # installed here: no error
