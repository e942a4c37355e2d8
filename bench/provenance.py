"""What produced a benchmark figure: versions, machine and settings, for every JSON file.

Why: a figure without the software versions, core count and load it was measured under cannot
be compared with the next run, or trusted in a README.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

PACKAGES = ("chatguard", "aiortc", "aioice", "av", "pylibsrtp", "uvloop", "numpy", "websockets")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.machine(),
        "loadavg": os.getloadavg(),
    }


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The options as JSON values (paths as text); entries named ``_...`` are not options."""
    return {
        k: str(v) if isinstance(v, Path) else v
        for k, v in vars(args).items()
        if not k.startswith("_")
    }
