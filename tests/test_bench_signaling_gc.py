"""Smoke run of the collector census: checks the counting code, never the figures' size."""

from __future__ import annotations

import pytest

from bench.signaling_gc import STATES, main


@pytest.mark.slow
def test_each_state_counts_the_objects_its_clients_add(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--clients", "6", "--top", "60"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:5]}
    assert set(rows) == {"none", *STATES}
    for state in STATES:
        assert rows[state][1] == "6"
        assert float(rows[state][3]) > 20  # objects per client: a connection is dozens
    assert "coroutine SignalingService._read_loop" in out  # per client, named by its function


def test_bad_options_are_refused() -> None:
    with pytest.raises(SystemExit):
        main(["--clients", "3"])
    with pytest.raises(SystemExit):
        main(["--states", "idle,dancing"])
