"""The README promises two commands: CI runs the very same test command, and the run command works
on a fresh machine exactly as a newcomer types it.

The fresh-install tests matter most and cost most (a new venv and a real `pip install .`, about a
minute): wave 1 passed its own suite while the README's first command crashed, because CI installed
the test extras in editable mode and nothing ran the product the way a user does.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.ports import free_port
from tests.support.rtcclient import ChatPeer, see_each_other

ROOT = Path(__file__).resolve().parent.parent
RUN_COMMAND = "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/chatguard serve"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    test_command = ci_lines[-1]
    assert "pytest" in test_command
    assert test_command in readme, f"README must show the test command: {test_command}"


def test_readme_shows_the_run_command() -> None:
    assert RUN_COMMAND in (ROOT / "README.md").read_text()


def _checkout_copy(destination: Path) -> Path:
    """The files a clone of this checkout has (tracked, plus new files not ignored), without any
    build output: the uncompiled `fastpath/*.pyx` sources are there, as in a fresh clone."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.split(b"\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name.decode()
        if source.is_file():
            target = destination / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def _clean_env() -> dict[str, str]:
    """This test's own venv must not leak into the newcomer's."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != bin_dir)
    return env


@pytest.fixture(scope="module")
def fresh_install(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the checkout in which the README's set-up has run: a new venv, `pip install .`,
    no extras."""
    checkout = _checkout_copy(tmp_path_factory.mktemp("newcomer") / "chatguard")
    setup = RUN_COMMAND.rsplit(" && ", 1)[0]
    result = subprocess.run(
        ["bash", "-c", setup], cwd=checkout, env=_clean_env(), capture_output=True, text=True,
        timeout=480, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    yield checkout


@pytest.mark.slow
def test_fresh_install_answers_help_and_version_without_test_or_bench_packages(
    fresh_install: Path,
) -> None:
    bin_dir = fresh_install / ".venv" / "bin"
    for module in ("skimage", "matplotlib", "pytest"):
        probe = subprocess.run(
            [bin_dir / "python", "-c", f"import {module}"], capture_output=True, check=False
        )
        assert probe.returncode != 0, f"{module} is installed without any extra"
    for args in (["--help"], ["--version"], ["serve", "--help"], ["relay", "--help"]):
        result = subprocess.run(
            [bin_dir / "chatguard", *args], cwd=fresh_install, env=_clean_env(),
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert result.returncode == 0, (args, result.stderr)
    version = subprocess.run(
        [bin_dir / "chatguard", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert re.fullmatch(r"chatguard \d+\.\d+\.\d+\S*\n", version), version


@pytest.mark.slow
async def test_fresh_install_serves_from_the_checkout_and_relays_a_call(
    fresh_install: Path, tmp_path: Path
) -> None:
    """`chatguard serve` started in the checkout directory (where the uncompiled `fastpath/`
    sources sit): the page and /healthz answer, the relay workers connect and stay up, and a
    call through the relay carries video both ways."""
    port, admin_port = free_port(), free_port()
    log_path = tmp_path / "serve.log"
    serve_args = RUN_COMMAND.rsplit(" && ", 1)[1].split()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*serve_args, "--port", str(port), "--admin-port", str(admin_port),
             "--route", "relay", "--relay-workers", "2"],
            cwd=fresh_install, env=_clean_env(), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        async with (
            httpx.AsyncClient(base_url=base) as http,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{admin_port}") as admin,
        ):
            workers = await _wait_for_workers(admin, process, log_path, count=2)
            assert (await http.get("/healthz")).json() == {"ok": True}
            page = await http.get("/")
            assert page.status_code == 200 and "<html" in page.text.lower()

            alice = await ChatPeer.join(f"ws://127.0.0.1:{port}/ws", level=200, tone_hz=440)
            bob = await ChatPeer.join(f"ws://127.0.0.1:{port}/ws", level=60, tone_hz=1000)
            try:
                await see_each_other(alice, bob, 30, "relay")
            finally:
                await alice.close()
                await bob.close()

            await asyncio.sleep(1.0)
            after = (await admin.get("/stats")).json()["relay_workers"]
            assert sorted((w["worker"], w["pid"]) for w in after) == sorted(
                (w["worker"], w["pid"]) for w in workers
            ), "a relay worker was restarted"
    finally:
        process.terminate()
        process.wait(timeout=20)
    log_text = log_path.read_text()
    assert "Traceback" not in log_text, log_text[-4000:]
    assert "exited with code" not in log_text, log_text[-4000:]


async def _wait_for_workers(
    admin: httpx.AsyncClient, process: subprocess.Popen[bytes], log_path: Path, count: int
) -> list[dict[str, object]]:
    """The workers' entries in the admin listener's /stats once `count` have joined, and have
    stayed joined for a second (a worker that dies at start-up joins for an instant, or never)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "chatguard serve exited:\n" + log_path.read_text()[-4000:]
        try:
            workers = (await admin.get("/stats")).json()["relay_workers"]
        except httpx.TransportError:
            workers = []
        if len(workers) >= count:
            await asyncio.sleep(1.0)
            again = (await admin.get("/stats")).json()["relay_workers"]
            if [w["worker"] for w in again] == [w["worker"] for w in workers]:
                return list(workers)
        await asyncio.sleep(0.2)
    raise AssertionError("relay workers did not join:\n" + log_path.read_text()[-4000:])
