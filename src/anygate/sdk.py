"""The gateway as SDK users hold it: :class:`Gateway` with a ``messages`` surface.

The core :class:`anygate.gateway.Gateway` knows nothing of the official ``anthropic`` SDK (the proxy never
loads it); this subclass adds ``messages.acreate / create / count_tokens`` on top, importing the SDK
surface only when it is first used.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from anygate import gateway

if TYPE_CHECKING:
    from anygate.anthropic.messages import Messages


class Gateway(gateway.Gateway):
    """A :class:`anygate.gateway.Gateway` with the in-process SDK surface (``gateway.messages``)."""

    @functools.cached_property
    def messages(self) -> Messages:
        """``messages.acreate / create / count_tokens`` over this gateway's config."""
        from anygate.anthropic.messages import Messages

        return Messages(self)

    def close(self) -> None:
        """Close the connection pool that the synchronous API (``messages.create``) uses."""
        from anygate.anthropic.messages import run_sync

        run_sync(self.aclose())
