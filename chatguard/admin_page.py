"""The admin listener's page (``GET /``): recent operator events and open reports, read-only.

Why a page beside ``/events`` and ``/reports``: an operator answering a complaint wants to read
what was decided without a JSON tool. Plain HTML, no script (the listener's Content Security
Policy forbids any), every value escaped: a report's reason and an event's label come from
outside. Newest first; the JSON lists are oldest first, as a log is. Metadata only: the records
hold no media, SDP or messages to show.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from signaling.recent_records import Record

CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'"

EVENT_COLUMNS = (
    "time",
    "id",
    "decision",
    "automated",
    "subject",
    "call",
    "ground",
    "ban_s",
    "address",
)
REPORT_COLUMNS = (
    "time", "id", "reporter", "reported", "call", "reason", "reporters", "counted", "ban",
)  # fmt: skip

_STYLE = (
    "body{font:14px system-ui,sans-serif;margin:1.5em}"
    "table{border-collapse:collapse;margin-bottom:2em}"
    "th,td{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}"
    "th{background:#f4f4f4}"
)


def cell(value: object) -> str:
    """A record's value as text: a ground (a dict) as ``key=value`` pairs, nothing as empty."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return ", ".join(f"{key}={item}" for key, item in value.items())
    return str(value)


def _table(title: str, columns: Sequence[str], records: Sequence[Record], empty: str) -> str:
    head = "".join(f"<th>{escape(column)}</th>" for column in columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape(cell(r.get(c)))}</td>" for c in columns) + "</tr>"
        for r in reversed(records)
    )
    body = rows or f'<tr><td colspan="{len(columns)}">{escape(empty)}</td></tr>'
    return (
        f"<h2>{escape(title)} ({len(records)})</h2>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def render(events: Sequence[Record] | str, reports: Sequence[Record] | str, node: str = "") -> str:
    """The page; `events` or `reports` given as a string is why they cannot be listed now."""
    title = "chatguard: recent events and open reports" + (f" (node {node})" if node else "")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        "<p>Newest first. JSON: <a href='/events'>/events</a>, <a href='/reports'>/reports</a>;"
        " metrics: <a href='/metrics'>/metrics</a>.</p>",
    ]
    for name, columns, records, empty in (
        ("Operator events", EVENT_COLUMNS, events, "No recent events."),
        ("Open reports", REPORT_COLUMNS, reports, "No open reports."),
    ):
        if isinstance(records, str):
            parts.append(f"<h2>{escape(name)}</h2><p>{escape(records)}</p>")
        else:
            parts.append(_table(name, columns, records, empty))
    parts.append("</body></html>")
    return "\n".join(parts)
