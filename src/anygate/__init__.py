"""anygate: use any LLM through the Anthropic Messages API.

Two faces over one core: the in-process SDK (``anygate.Anthropic`` / ``anygate.AsyncAnthropic``, the
official client classes whose transport is the gateway; and ``anygate.anthropic.messages.acreate``) and
the proxy server (``anygate --config config.yaml``). Both run every request through
:class:`anygate.gateway.Gateway`; ``anygate.Gateway`` is that gateway with the SDK's ``messages`` surface.

``anygate.anthropic``, ``anygate.Anthropic`` and ``anygate.AsyncAnthropic`` are imported on first use:
they load the official ``anthropic`` SDK, which the proxy itself never needs and which takes about a
second to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from anygate.protocol.errors import GatewayError
from anygate.sdk import Gateway

if TYPE_CHECKING:
    from anygate import anthropic
    from anygate.anthropic.client import Anthropic, AsyncAnthropic

__all__ = ["Anthropic", "AsyncAnthropic", "Gateway", "GatewayError", "__version__", "anthropic"]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "anthropic":
        import importlib

        return importlib.import_module("anygate.anthropic")
    if name in ("Anthropic", "AsyncAnthropic"):
        import importlib

        return getattr(importlib.import_module("anygate.anthropic.client"), name)
    raise AttributeError(f"module 'anygate' has no attribute {name!r}")
