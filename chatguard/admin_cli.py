"""``chatguard admin events|reports``: the admin listener's lists, from a terminal.

Why a command beside the page: an operator on the machine (or through an SSH tunnel to the
listener, which binds to localhost) can read or pipe the recent events and open reports without
a browser. It reads ``/events`` or ``/reports`` with the standard library only, and prints one
tab-separated line per record, oldest first, under a header (the page's columns), or the JSON
as served (``--json``).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

from chatguard.admin_page import EVENT_COLUMNS, REPORT_COLUMNS, cell

TIMEOUT_S = 10.0


def run_admin(kind: str, admin_url: str, as_json: bool) -> int:
    """Print `kind` ("events" or "reports") from the listener at `admin_url`; 1 with a line on
    stderr when it cannot be read."""
    url = f"{admin_url.rstrip('/')}/{kind}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            records = json.load(response)
    except urllib.error.HTTPError as exc:
        reason = exc.read().decode("utf-8", "replace").strip() or exc.reason
        print(f"chatguard: {url} answered {exc.code}: {reason}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"chatguard: cannot read the admin listener at {url}: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(records, indent=1))
        return 0
    columns = EVENT_COLUMNS if kind == "events" else REPORT_COLUMNS
    print("\t".join(columns))
    for record in records:
        print("\t".join(_one_line(cell(record.get(column))) for column in columns))
    return 0


def _one_line(text: str) -> str:
    """A value that cannot break the table (a report's reason is the reporter's text)."""
    return " ".join(text.split())
