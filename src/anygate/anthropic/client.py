"""``anygate.Anthropic`` / ``anygate.AsyncAnthropic``: the official clients over the gateway, in-process.

They are the official ``anthropic.Anthropic`` / ``anthropic.AsyncAnthropic`` with one change, the HTTP
transport (:mod:`anygate.anthropic.transport`): requests go to a :class:`~anygate.gateway.Gateway` in the
same process instead of a socket. Everything the official client does on top of HTTP therefore works
unchanged and stays the official code: ``messages.create / stream / parse / count_tokens``,
``beta.messages`` and its tool runner, ``models.list / retrieve``, retries, timeouts, typed events and
exceptions.

Two ways to name models:

- ``Anthropic(config="config.yaml")`` (a path, a dict in the same format, or a loaded
  :class:`~anygate.config.Config`): the config's model names, routing, retries and keys, as the proxy
  serves them.
- ``Anthropic()``: ``<provider>/<model>`` names (``openai/gpt-4o-mini``, ``mock/demo``…), each served with
  ``api_key`` (else the provider's usual variable) and ``api_base`` (else the provider's default), as
  ``anygate.anthropic.messages.acreate`` does.

``config`` here is the gateway's config; the official client's ``config=`` (a credentials profile) has no
meaning in-process. ``close()`` / ``with`` end everything the client started (for the synchronous client:
its event loop thread and pooled connections); a client that is never closed is cleaned up when it is
collected or at interpreter exit, without warnings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import anthropic
import httpx2

from anygate.anthropic.transport import IN_PROCESS_URL, GatewayTransport, SyncGatewayTransport
from anygate.config import Config, config_from_mapping, load_config
from anygate.gateway import Gateway
from anygate.hooks import Hook

ConfigSource: TypeAlias = str | os.PathLike[str] | Mapping[str, Any] | Config
"""A config file's path, its content as a dict, or a loaded config."""


class InProcessHttpClient(httpx2.Client):
    """The synchronous client's ``httpx2`` client; copies of the client (``with_options``) share it."""

    def __init__(self, transport: SyncGatewayTransport) -> None:
        super().__init__(transport=transport)
        self.gateway_transport = transport


class AsyncInProcessHttpClient(httpx2.AsyncClient):
    """The async client's ``httpx2`` client; copies of the client (``with_options``) share it."""

    def __init__(self, transport: GatewayTransport) -> None:
        super().__init__(transport=transport)
        self.gateway_transport = transport


def _gateway_transport(
    config: ConfigSource | None,
    gateway: Gateway | None,
    hooks: Sequence[Hook],
    api_key: str | None,
    api_base: str | None,
) -> GatewayTransport:
    if config is not None and gateway is not None:
        raise TypeError("pass either config= or gateway=, not both")
    by_config = config is not None or gateway is not None
    if by_config and (api_key is not None or api_base is not None):
        raise TypeError(
            "api_key= and api_base= are for <provider>/<model> names without a config; "
            "with a config, each model's key and endpoint come from it"
        )
    owns_gateway = gateway is None
    if gateway is None:
        gateway = Gateway(_load(config), hooks=hooks)
    elif hooks:
        raise TypeError("hooks= belong to the gateway passed as gateway=")
    return GatewayTransport(gateway, by_config=by_config, api_base=api_base, owns_gateway=owns_gateway)


def _load(config: ConfigSource | None) -> Config | None:
    if config is None or isinstance(config, Config):
        return config
    if isinstance(config, Mapping):
        return config_from_mapping(config)
    return load_config(config)


def _check_shared(http_client: object, expected: type, **arguments: object) -> None:
    """A client built around an existing in-process HTTP client (the official ``copy()`` does this)
    shares its gateway, so it takes no gateway arguments of its own."""
    if not isinstance(http_client, expected):
        raise TypeError(
            "anygate's clients send requests to the gateway in-process; http_client= cannot replace that"
        )
    given = [name for name, value in arguments.items() if value]
    if given:
        raise TypeError(f"a copy shares its client's gateway; {', '.join(given)} cannot change it")


class Anthropic(anthropic.Anthropic):
    """The official synchronous client, served in-process by anygate over any provider.

    Args:
        config: the gateway config (path, dict or :class:`~anygate.config.Config`); without it, models are
            ``<provider>/<model>`` names.
        gateway: an existing gateway to serve the requests (shared, not closed with the client).
        hooks: lifecycle hooks for the gateway this client builds.
        api_key: the upstream key for ``<provider>/<model>`` names (else the provider's variable).
        api_base: the upstream base URL for ``<provider>/<model>`` names (else the provider's default).
        **options: the official client's options (``max_retries``, ``timeout``, ``default_headers``…).
    """

    def __init__(
        self,
        *,
        config: ConfigSource | None = None,
        gateway: Gateway | None = None,
        hooks: Sequence[Hook] = (),
        api_key: str | None = None,
        api_base: str | None = None,
        http_client: httpx2.Client | None = None,
        base_url: str | httpx2.URL | None = None,
        **options: Any,
    ) -> None:
        if http_client is None:
            inner = _gateway_transport(config, gateway, hooks, api_key, api_base)
            http_client = InProcessHttpClient(SyncGatewayTransport(inner))
        else:
            _check_shared(
                http_client,
                InProcessHttpClient,
                config=config,
                gateway=gateway,
                hooks=hooks,
                api_base=api_base,
            )
        # An explicit credential keeps the official client from reading ANTHROPIC_API_KEY (which would
        # then go to whichever provider a model names); the caller's own key, if any, is set below.
        super().__init__(
            api_key="in-process", base_url=base_url or IN_PROCESS_URL, http_client=http_client, **options
        )
        self.api_key = api_key

    @property
    def gateway(self) -> Gateway:
        """The gateway that serves this client (its config, router and health)."""
        assert isinstance(self._client, InProcessHttpClient)
        return self._client.gateway_transport.inner.gateway

    def _validate_headers(self, headers: Any, omitted: Any) -> None:
        """In-process, a key is optional: the config's keys, or the provider's variable, may serve."""


class AsyncAnthropic(anthropic.AsyncAnthropic):
    """The official async client, served in-process by anygate over any provider (arguments as for
    :class:`Anthropic`)."""

    def __init__(
        self,
        *,
        config: ConfigSource | None = None,
        gateway: Gateway | None = None,
        hooks: Sequence[Hook] = (),
        api_key: str | None = None,
        api_base: str | None = None,
        http_client: httpx2.AsyncClient | None = None,
        base_url: str | httpx2.URL | None = None,
        **options: Any,
    ) -> None:
        if http_client is None:
            inner = _gateway_transport(config, gateway, hooks, api_key, api_base)
            http_client = AsyncInProcessHttpClient(inner)
        else:
            _check_shared(
                http_client,
                AsyncInProcessHttpClient,
                config=config,
                gateway=gateway,
                hooks=hooks,
                api_base=api_base,
            )
        super().__init__(
            api_key="in-process", base_url=base_url or IN_PROCESS_URL, http_client=http_client, **options
        )
        self.api_key = api_key

    @property
    def gateway(self) -> Gateway:
        """The gateway that serves this client (its config, router and health)."""
        assert isinstance(self._client, AsyncInProcessHttpClient)
        return self._client.gateway_transport.gateway

    def _validate_headers(self, headers: Any, omitted: Any) -> None:
        """In-process, a key is optional: the config's keys, or the provider's variable, may serve."""
