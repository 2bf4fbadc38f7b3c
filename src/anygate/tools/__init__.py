"""Features Anthropic's API runs on the server, run by the gateway for every other upstream.

Claude Code leans on them: a too-long prompt answered with Anthropic's exact error makes it compact
the conversation and go on (:mod:`~anygate.tools.overflow`); ``context_management`` edits keep long
sessions small (:mod:`~anygate.tools.context_editing`, :mod:`~anygate.tools.compaction`); server tools
(web search and fetch, tool search) run in the gateway, over several upstream calls that the client
sees as one message (:mod:`~anygate.tools.loop`, :mod:`~anygate.tools.server_tools`). An Anthropic
passthrough upstream runs these itself, so its requests are left alone (:data:`NATIVE_PROVIDERS`).

The gateway's path pays for none of this unless a request asks for it: one key test on the request and
one on the deployment's ``model_info``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from anygate.deployment import Deployment
from anygate.protocol.errors import GatewayError
from anygate.providers.base import Provider
from anygate.tools.compaction import CompactionSettings, compacted_history, needs_compaction
from anygate.tools.context_editing import Edits, apply_edits, requested_edits
from anygate.tools.overflow import (
    as_prompt_too_long,
    client_body_size,
    input_bound,
    max_input_tokens,
    prompt_too_long,
)

NATIVE_PROVIDERS: Final = frozenset({"anthropic"})
"""Providers whose upstream runs Anthropic's server-side features itself (passthrough)."""


@dataclass(slots=True)
class ServerSideEdits:
    """What :func:`server_side_edits` made of a request."""

    request: dict[str, Any]
    """The request as the upstream should get it."""
    edits: Edits | None = None
    """The clearing edits to report (None when none applied)."""
    compaction: CompactionSettings | None = None
    """Set when the conversation reached its ``compact_20260112`` trigger: summarise before answering."""


async def server_side_edits(
    provider: Provider,
    deployment: Deployment,
    request: dict[str, Any],
    headers: Mapping[str, str],
    upstream_view: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> ServerSideEdits:
    """The request's ``context_management`` applied, and a request known to exceed the deployment's
    ``max_input_tokens`` refused as Anthropic refuses it.

    With a compaction edit, the conversation is taken from its last summary on (the client keeps the
    whole of it). The request is counted (in a worker thread: a tokenizer over a large prompt takes
    milliseconds) only when a cheap bound says it might reach a token trigger or the window. A request
    about to be compacted is not refused for its size: the summary is what will be answered.
    ``upstream_view`` gives what the upstream is sent for a request (deferred tools left out, server
    blocks as tool calls): the tokens that count are those.
    """
    view = upstream_view or _as_is
    body_size = client_body_size(headers)
    edits = requested_edits(request, request["model"]) if "context_management" in request else None
    compaction: CompactionSettings | None = None
    if edits is not None:
        if edits.compaction is not None:
            request = compacted_history(request)
        counted = None
        triggers = edits.token_triggers()
        if triggers and input_bound(request, body_size) >= min(triggers):
            counted = await asyncio.to_thread(provider.count_tokens_locally, deployment, view(request))
        request = apply_edits(request, edits, counted)
        if edits.compaction is not None and counted is not None:
            if edits.applied:  # clearing came first: the trigger counts what is left
                counted = await asyncio.to_thread(provider.count_tokens_locally, deployment, view(request))
            if needs_compaction(edits.compaction, counted):
                compaction = edits.compaction
        if not edits.applied:
            edits = None
    limit = max_input_tokens(deployment.model_info)
    if compaction is None and limit is not None and input_bound(request, body_size) > limit:
        tokens = await asyncio.to_thread(provider.count_tokens_locally, deployment, view(request))
        if tokens > limit:
            raise prompt_too_long(tokens, limit)
    return ServerSideEdits(request, edits, compaction)


def _as_is(request: dict[str, Any]) -> dict[str, Any]:
    return request


async def overflow_error(
    error: GatewayError, provider: Provider, deployment: Deployment, request: dict[str, Any]
) -> GatewayError:
    """Anthropic's too-long-prompt error for an upstream's context-window ``error`` (see
    :func:`~anygate.tools.overflow.as_prompt_too_long`), with the request counted locally."""
    counted = await asyncio.to_thread(provider.count_tokens_locally, deployment, request)
    return as_prompt_too_long(error, counted, max_input_tokens(deployment.model_info))
