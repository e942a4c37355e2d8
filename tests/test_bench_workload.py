"""What every workload shares: ``--json`` written exactly where asked (default documented),
and an output that cannot be written refused before a run rather than after it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import msgspec
import pytest

from bench.stats import Percentiles
from bench.workload import add_output_options, check_output, default_json, write_json


def options(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_output_options(parser, "relay", "figures")
    return parser.parse_args(argv)


def test_the_default_is_documented_and_relative_to_where_it_runs() -> None:
    parser = argparse.ArgumentParser()
    add_output_options(parser, "relay", "figures")
    assert options().json == default_json("relay") == Path("bench/results/relay.json")
    text = " ".join(parser.format_help().split())
    assert "(default bench/results/relay.json under the current directory;" in text


def test_json_goes_exactly_where_asked_with_missing_folders_made(tmp_path: Path) -> None:
    path = tmp_path / "new" / "deeper" / "run.data"  # no suffix added, no folder assumed
    assert check_output(options("--json", str(path))) is None
    write_json(Percentiles(0, None, None, None, None), path)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["run.data"]
    text = path.read_text()
    assert '"p50_ms": null' in text and "NaN" not in text and text.endswith("}\n")
    assert msgspec.json.decode(path.read_bytes(), type=Percentiles).count == 0


def test_an_output_that_cannot_be_written_is_refused_before_the_run(tmp_path: Path) -> None:
    problem = check_output(options("--json", str(tmp_path)))
    assert problem == f"--json {tmp_path}: is a folder; give a file name"
    file = tmp_path / "file"
    file.write_text("")
    problem = check_output(options("--plot", str(file / "p.png")))
    assert problem == f"--plot {file / 'p.png'}: {file} is not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_folder_it_may_not_write_in_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    problem = check_output(options("--json", str(locked / "a" / "r.json")))
    assert problem == f"--json {locked / 'a' / 'r.json'}: cannot write in {locked}"
