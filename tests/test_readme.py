"""The README promises two commands; CI must run the very same test command."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    test_command = ci_lines[-1]
    assert "pytest" in test_command
    assert test_command in readme, f"README must show the test command: {test_command}"
