"""The admin listener's page, rendered without a server: every value escaped, newest first, and
a list that cannot be read says why instead of looking empty."""

from __future__ import annotations

from chatguard.admin_page import render


def test_values_are_escaped_and_the_newest_comes_first() -> None:
    events = [
        {"id": "e1", "time": "2026-12-06T04:20:26.123Z", "decision": "report",
         "ground": {"report_reason": "<script>alert(1)</script>", "reporters": 1}},
        {"id": "e2", "time": "2026-12-06T04:21:00.000Z", "decision": "ban", "ban_s": 600.0},
    ]  # fmt: skip
    page = render(events, [], node='n"1')
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "report_reason=&lt;script&gt;" in page  # a ground reads as key=value pairs
    assert page.index("e2") < page.index("e1")
    assert "(node n&quot;1)" in page
    assert "Operator events (2)" in page and "No open reports." in page


def test_a_list_that_cannot_be_read_says_why() -> None:
    page = render([], "the shared store (Redis) is unreachable: <refused>", node="")
    assert "No recent events." in page
    assert (
        "<h2>Open reports</h2><p>the shared store (Redis) is unreachable: &lt;refused&gt;" in page
    )
