"""anygate: use any LLM through the Anthropic Messages API.

Two faces over one core: the in-process SDK (``anygate.anthropic.messages.acreate``) and the proxy server
(``anygate --config config.yaml``). Both run every request through :class:`anygate.gateway.Gateway`.
"""

from anygate import anthropic
from anygate.gateway import Gateway
from anygate.protocol.errors import GatewayError

__all__ = ["Gateway", "GatewayError", "__version__", "anthropic"]

__version__ = "0.1.0"
