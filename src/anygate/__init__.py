"""anygate: use any LLM through the Anthropic Messages API.

Two faces over one core: the in-process SDK (``anygate.anthropic.messages.acreate``) and the proxy server
(``anygate --config config.yaml``). Both run every request through :class:`anygate.gateway.Gateway`;
``anygate.Gateway`` is that gateway with the SDK's ``messages`` surface on it.

``anygate.anthropic`` is imported on first use: it loads the official ``anthropic`` SDK (its types and
exceptions), which the proxy itself never needs and which takes about a second to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from anygate.protocol.errors import GatewayError
from anygate.sdk import Gateway

if TYPE_CHECKING:
    from anygate import anthropic

__all__ = ["Gateway", "GatewayError", "__version__", "anthropic"]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "anthropic":
        import importlib

        return importlib.import_module("anygate.anthropic")
    raise AttributeError(f"module 'anygate' has no attribute {name!r}")
