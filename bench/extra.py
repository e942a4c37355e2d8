"""The ``bench`` extra: the load tool's own libraries, and the one-line answer when one is missing.

Why a module: the product's dependencies are enough to serve. Plots (matplotlib), the strict
clip made from sample photographs (scikit-image, OpenCV) and the browser pages of
``strict-browser`` (Playwright) are the load tool's alone, installed
with ``pip install 'chatguard[bench]'``. Workloads import them inside the functions that use
them; ``chatguard bench`` turns the :class:`ModuleNotFoundError` of one of them into a line
naming the extra (exit code 2, no traceback), and :func:`require` lets a workload's option check
say so before a run starts rather than after minutes of measuring.
"""

from __future__ import annotations

import importlib.util
from typing import Final

EXTRA_MODULES: Final = frozenset({"matplotlib", "skimage", "cv2", "playwright"})
"""Top-level names of the modules the ``bench`` extra installs (pyproject.toml)."""
INSTALL: Final = "pip install 'chatguard[bench]'"


def require(*modules: str) -> None:
    """Raise the :class:`ModuleNotFoundError` an import would, without importing (cheap).

    Only for the extra's modules: anything else missing is a broken install, not an option.
    """
    for module in modules:
        assert module.partition(".")[0] in EXTRA_MODULES, module
        if importlib.util.find_spec(module) is None:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The extra's module whose absence ``exc`` reports, or None if it is about another."""
    top = (exc.name or "").partition(".")[0]
    return top if top in EXTRA_MODULES else None
