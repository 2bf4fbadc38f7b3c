"""The model names a gateway serves, as Anthropic's ``/v1/models`` lists them: pages, single entries.

Both faces answer ``GET /v1/models`` and ``GET /v1/models/{model_id}`` from here: the proxy's route and
the in-process client's transport.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import orjson

from anygate.protocol.errors import GatewayError
from anygate.routing.names import ModelNames

DEFAULT_MODELS_LIMIT: Final = 20
MAX_MODELS_LIMIT: Final = 1000
"""``GET /v1/models`` page sizes, as Anthropic's API has them."""


class ModelCatalog:
    """The configured model names as Anthropic model objects."""

    __slots__ = ("_created", "_names")

    def __init__(self, names: ModelNames, started_at: datetime) -> None:
        self._names = names
        self._created = started_at.isoformat().replace("+00:00", "Z")
        """What ``created_at`` says for models whose ``model_info`` does not give it."""

    def page(
        self, *, limit: int = DEFAULT_MODELS_LIMIT, after_id: str | None = None, before_id: str | None = None
    ) -> bytes:
        """``GET /v1/models`` in Anthropic's list format, one entry per configured model name.

        Paged as Anthropic pages: at most ``limit`` entries (1 to 1000) after ``after_id`` or before
        ``before_id`` (ids of this list; an unknown one is a 400), with ``has_more`` and the page's
        ``first_id`` / ``last_id``. ``max_input_tokens`` and ``max_tokens`` come from ``model_info``
        (``max_input_tokens``, ``max_output_tokens`` or ``max_tokens``) so clients learn a non-Claude
        model's real limits.
        """
        if not 1 <= limit <= MAX_MODELS_LIMIT:
            raise GatewayError(400, f"limit: must be between 1 and {MAX_MODELS_LIMIT}, got {limit}")
        if after_id is not None and before_id is not None:
            raise GatewayError(400, "after_id and before_id cannot be used together")
        names = self._names.listed_names()
        if after_id is not None:
            start = _position(names, after_id, "after_id") + 1
            page, has_more = names[start : start + limit], start + limit < len(names)
        elif before_id is not None:
            end = _position(names, before_id, "before_id")
            page, has_more = names[max(end - limit, 0) : end], end - limit > 0
        else:
            page, has_more = names[:limit], limit < len(names)
        data = [self.entry(name) for name in page]
        return orjson.dumps(
            {
                "data": data,
                "has_more": has_more,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )

    def answer(self, model_id: str | None, query: Mapping[str, str]) -> bytes:
        """``GET /v1/models[/{model_id}]`` with its query parameters as strings (both faces call this)."""
        if model_id is not None:
            return self.retrieve(model_id)
        raw_limit = query.get("limit")
        try:
            limit = DEFAULT_MODELS_LIMIT if raw_limit is None else int(raw_limit)
        except ValueError:
            raise GatewayError(400, f"limit: must be an integer, got {raw_limit!r}") from None
        return self.page(limit=limit, after_id=query.get("after_id"), before_id=query.get("before_id"))

    def retrieve(self, model_id: str) -> bytes:
        """``GET /v1/models/{model_id}``: one entry of :meth:`page`; 404 for a name not listed."""
        if model_id not in self._names.listed_names():
            raise GatewayError(404, f"model {model_id!r} is not configured on this gateway")
        return orjson.dumps(self.entry(model_id))

    def entry(self, name: str) -> dict[str, Any]:
        """Anthropic's model object for a model name (what ``/v1/models`` lists for it)."""
        created = self._created
        deployments = self._names.deployments(name)
        info: Mapping[str, Any] = deployments[0].model_info if deployments else {}
        entry: dict[str, Any] = {
            "type": "model",
            "id": name,
            "display_name": str(info.get("display_name") or name),
            "created_at": str(info.get("created_at") or created),
        }
        max_input = info.get("max_input_tokens")
        max_output = info.get("max_output_tokens") or info.get("max_tokens")
        if isinstance(max_input, int):
            entry["max_input_tokens"] = max_input
        if isinstance(max_output, int):
            entry["max_tokens"] = max_output
        return entry


def _position(names: list[str], cursor: str, field: str) -> int:
    try:
        return names.index(cursor)
    except ValueError:
        raise GatewayError(400, f"{field}: no model with id {cursor!r} on this gateway") from None
