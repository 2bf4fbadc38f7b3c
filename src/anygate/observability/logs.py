"""JSON logs: every log line as one JSON object, and one request record per request.

``--log-format json`` turns both on: :class:`JsonFormatter` renders every record of the process (start-up,
warnings, tracebacks) as a JSON object on one line, and :class:`RequestLogHook` writes one
``anygate.requests`` line per completed request with the fields of the spend record
(:func:`~anygate.observability.records.spend_record`). Every message passes the secret masking of
:mod:`anygate.protocol.redact` once more on its way out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from anygate.costs import usage_cost
from anygate.deployment import Deployment
from anygate.hooks import Hook, RequestRecord
from anygate.observability.records import spend_record
from anygate.protocol.redact import mask_secrets

REQUEST_LOGGER: Final = "anygate.requests"
RECORD_ATTRIBUTE: Final = "anygate_record"
"""The attribute of a log record that carries a request record (rendered as fields of the JSON line)."""

request_log = logging.getLogger(REQUEST_LOGGER)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and a request's fields when it has them."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask_secrets(record.getMessage()),
        }
        fields = getattr(record, RECORD_ATTRIBUTE, None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = mask_secrets(self.formatException(record.exc_info))
        return orjson.dumps(line, default=str).decode()


class RequestLogHook(Hook):
    """Writes one ``anygate.requests`` log line per completed request, with the spend record's fields.

    Args:
        deployments: the configured deployments (their prices and API bases).
        include_prompt: also write the request's system and messages (``general_settings.log_prompts``).
    """

    def __init__(self, deployments: Iterable[Deployment], *, include_prompt: bool = False) -> None:
        self._deployments = {d.deployment_id: d for d in deployments}
        self._include_prompt = include_prompt

    def completed(self, record: RequestRecord) -> None:
        if not request_log.isEnabledFor(logging.INFO):
            return
        deployment = self._deployments.get(record.deployment_id or "")
        cost = usage_cost(deployment.model_info, record.usage) if deployment is not None else None
        fields = spend_record(record, deployment, cost, include_prompt=self._include_prompt)
        request_log.info(
            "%s %s %d", record.route, record.model or "-", record.status, extra={RECORD_ATTRIBUTE: fields}
        )
