"""Logging set-up of the server processes."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str) -> None:
    """Plain lines on stderr. Thread and process names are not in the format, so they are not looked up
    for each record: a request log line is on the hot path."""
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
