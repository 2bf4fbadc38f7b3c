"""The Anthropic SDK surface, in-process: ``anygate.Anthropic`` / ``AsyncAnthropic`` (the official client
classes over the gateway) and ``anygate.anthropic.messages.acreate(...)``.

It takes what the official SDK's ``client.messages.create`` takes (plus ``api_key``, ``api_base``,
``timeout`` and ``extra_headers`` for the upstream) and returns the official SDK's types, so code written
for ``anthropic`` works unchanged over any provider.
"""

from anygate.anthropic.client import Anthropic, AsyncAnthropic
from anygate.anthropic.messages import AsyncEventStream, EventStream, Messages, default_messages

messages = default_messages()

__all__ = ["Anthropic", "AsyncAnthropic", "AsyncEventStream", "EventStream", "Messages", "messages"]
