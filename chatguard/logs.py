"""One format for every line a chatguard process logs: its own, uvicorn's and the workers'.

Light on purpose (no web or media imports): ``chatguard relay`` configures its logging here
too, before it loads anything heavy.
"""

from __future__ import annotations

import logging.config
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


def log_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` mapping: one stderr handler, in chatguard's format, on
    the root logger. uvicorn's loggers get no handler of their own, so their lines propagate
    there and look like every other line (uvicorn's default config would give them its own
    format). Below debug, per-connection lines (uvicorn's WebSocket lines, aioice's line for
    every ICE candidate check) are left out."""
    debug = level == "debug"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"chatguard": {"format": LOG_FORMAT}},
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


def configure_logging(level: str) -> None:
    logging.config.dictConfig(log_config(level))
