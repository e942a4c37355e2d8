"""One format for every line a chatguard process logs: its own, uvicorn's and the workers'.

Two formats: ``text`` for a person at a terminal, ``json`` (one object per line, UTC
timestamps) for a log collector. Light on purpose (no web or media imports): ``chatguard
relay`` configures its logging here too, before it loads anything heavy.
"""

from __future__ import annotations

import json
import logging.config
import time
from typing import Any

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class PerConnectionLines(logging.Filter):
    """uvicorn logs every WebSocket's handshake, opening and closing at info, on its *error*
    logger, with the client's address: an access log in all but name, three lines per client
    and per reconnect. Kept at debug, like the access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not (
            message.startswith('%s - "WebSocket ')
            or message in ("connection open", "connection closed")
        )


class JsonLines(logging.Formatter):
    """A record as one JSON object: ``time`` (ISO 8601, UTC, milliseconds), ``level``,
    ``logger``, ``message``, the process id, and the traceback if any. Fields a caller passes
    with ``extra={"event": {...}}`` are kept as ``event``, so structured data stays data."""

    def converter(self, seconds: float | None) -> time.struct_time:
        return time.gmtime(seconds)

    def format(self, record: logging.LogRecord) -> str:
        stamp = self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
        line: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        event = getattr(record, "event", None)
        if event is not None:
            line["event"] = event
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def log_config(level: str, log_format: str = "text") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` mapping: one stderr handler, in chatguard's format, on
    the root logger. uvicorn's loggers get no handler of their own, so their lines propagate
    there and look like every other line (uvicorn's default config would give them its own
    format). Below debug, per-connection lines (uvicorn's WebSocket lines, aioice's line for
    every ICE candidate check) are left out."""
    debug = level == "debug"
    formatter: dict[str, Any] = (
        {"()": JsonLines} if log_format == "json" else {"format": LOG_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"chatguard": formatter},
        "filters": {"per_connection": {"()": PerConnectionLines}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "chatguard",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            "aioice": {"level": "DEBUG" if debug else "WARNING"},
            "uvicorn.error": {"filters": [] if debug else ["per_connection"]},
        },
    }


def configure_logging(level: str, log_format: str = "text") -> None:
    logging.config.dictConfig(log_config(level, log_format))
