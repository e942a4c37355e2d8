"""`chatguard admin events|reports` against a real service's admin listener: a report filed by a
real client is printed as a tab-separated line (or as the JSON served), and a listener that
cannot be reached is one clear line and exit code 1."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from chatguard.cli import main
from tests.support.ports import free_port
from tests.support.server import RunningServer, make_config, run_server
from tests.support.wsclient import Client


@pytest.fixture
def server() -> Iterator[RunningServer]:
    yield from run_server(make_config())


async def test_a_report_is_printed_as_a_line_and_as_json(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    a = await Client.connect(server.ws_url, device="reporter")
    b = await Client.connect(server.ws_url, device="reported")
    for client in (a, b):
        await client.send(type="join")
    pair = (await a.expect_paired())["pair"]
    await b.expect_paired()
    await a.send(type="report", reason="spam\tand worse")
    await b.expect("partner_left")
    assert main(["admin", "reports", "--admin", server.admin_url]) == 0
    header, line = capsys.readouterr().out.splitlines()
    assert header.split("\t") == [
        "time", "id", "reporter", "reported", "call", "reason", "reporters", "counted", "ban",
    ]  # fmt: skip
    fields = dict(zip(header.split("\t"), line.split("\t"), strict=True))
    assert (fields["reporter"], fields["reported"], fields["call"]) == (
        a.welcome["id"], b.welcome["id"], pair,
    )  # fmt: skip
    assert (fields["reason"], fields["reporters"], fields["ban"]) == (
        "spam and worse",
        "1",
        "False",
    )
    assert main(["admin", "events", "--admin", server.admin_url + "/", "--json"]) == 0
    (event,) = json.loads(capsys.readouterr().out)
    assert (event["decision"], event["subject"], event["call"]) == ("report", b.welcome["id"], pair)
    assert event["ground"] == {"report_reason": "spam\tand worse", "reporters": 1}
    await a.close()
    await b.close()


def test_an_unreachable_listener_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["admin", "events", "--admin", url]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(
        f"chatguard: cannot read the admin listener at {url}/events"
    )
    assert len(err.splitlines()) == 1
