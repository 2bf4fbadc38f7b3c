"""Logging set-up of the server processes."""

from __future__ import annotations

import logging
import sys

LOG_FORMATS = ("text", "json")


def configure_logging(level: str, log_format: str = "text") -> None:
    """Plain lines (or one JSON object per line) on stderr. Thread and process names are not in the
    format, so they are not looked up for each record: a request log line is on the hot path."""
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if log_format == "json":
        from anygate.observability.logs import JsonFormatter

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
        return
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
