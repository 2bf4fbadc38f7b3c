"""What a request cost: its usage times per-token prices.

Prices come, in order, from the deployment's config (LiteLLM's ``input_cost_per_token``,
``output_cost_per_token``, ``cache_read_input_token_cost``, ``cache_creation_input_token_cost`` in
``litellm_params`` or ``model_info``) and from ``prices.json``: the chat models of LiteLLM's maintained
price map (``model_prices_and_context_window.json`` of litellm 1.110.2, MIT, see ``prices.LICENSE``),
reduced to those four figures. Shipping the data rather than depending on ``litellm`` keeps a 400 KB
file instead of a package with hundreds of dependencies; refresh it with a newer litellm's file.

Anthropic counts ``input_tokens`` without cache reads and writes, so the four token kinds are priced
separately; a model without cache prices pays its input price for them. Tiered prices (above 200k
tokens) and per-second prices are not applied. A model with no price costs 0 and is logged once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Final

import orjson

from anygate.deployment import Deployment
from anygate.hooks import Usage

log = logging.getLogger("anygate.teams")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per token."""

    input: float
    output: float
    cache_read: float
    cache_write: float

    def cost(self, usage: Usage) -> float:
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_read_input_tokens * self.cache_read
            + usage.cache_creation_input_tokens * self.cache_write
        )


FREE: Final = Price(0.0, 0.0, 0.0, 0.0)


@cache
def price_table() -> Mapping[str, Mapping[str, float]]:
    """The shipped table, loaded on first use."""
    data = resources.files("anygate.teams").joinpath("prices.json").read_bytes()
    table: Mapping[str, Mapping[str, float]] = orjson.loads(data)
    return table


def price_from(figures: Mapping[str, float]) -> Price:
    input_price = float(figures.get("input_cost_per_token", 0.0))
    return Price(
        input=input_price,
        output=float(figures.get("output_cost_per_token", 0.0)),
        cache_read=float(figures.get("cache_read_input_token_cost", input_price)),
        cache_write=float(figures.get("cache_creation_input_token_cost", input_price)),
    )


def lookup(provider: str, model: str) -> Price | None:
    """The table's price of ``model`` at ``provider`` (``provider/model`` first, then ``model``)."""
    table = price_table()
    for name in (f"{provider}/{model}", model, model.rsplit("/", 1)[-1]):
        figures = table.get(name)
        if figures is not None:
            return price_from(figures)
    return None


class PriceBook:
    """The price of each configured deployment, resolved once at start-up."""

    def __init__(self, deployments: Sequence[Deployment]) -> None:
        self._by_deployment: dict[str, Price] = {}
        for deployment in deployments:
            if deployment.upstream_model == "*" and not deployment.costs:
                continue  # a pattern: priced by the model each request names
            price = self.resolve(deployment)
            if price is None:
                if deployment.provider != "mock":
                    log.warning(
                        "no price for deployment %s (%s/%s): its requests cost 0; set "
                        "model_info.input_cost_per_token and output_cost_per_token",
                        deployment.deployment_id,
                        deployment.provider,
                        deployment.upstream_model,
                    )
                price = FREE
            self._by_deployment[deployment.deployment_id] = price
        self._unknown: set[str] = set()

    @staticmethod
    def resolve(deployment: Deployment) -> Price | None:
        table = (
            lookup(deployment.provider, deployment.upstream_model)
            if deployment.upstream_model != "*"
            else None
        )
        if deployment.costs:
            base = table or FREE
            costs = deployment.costs
            input_price = costs.get("input_cost_per_token", base.input)
            return Price(
                input=input_price,
                output=costs.get("output_cost_per_token", base.output),
                cache_read=costs.get(
                    "cache_read_input_token_cost", base.cache_read if table else input_price
                ),
                cache_write=costs.get(
                    "cache_creation_input_token_cost", base.cache_write if table else input_price
                ),
            )
        return table

    def cost(self, deployment_id: str | None, provider: str | None, model: str, usage: Usage | None) -> float:
        """The cost of ``usage`` on a deployment; ``model`` (the requested name) prices pattern and
        one-off deployments."""
        if usage is None or deployment_id is None:
            return 0.0
        price = self._by_deployment.get(deployment_id)
        if price is None:
            name = model.split("/", 1)[1] if provider and model.startswith(f"{provider}/") else model
            price = lookup(provider or "", name)
            if price is None:
                if model not in self._unknown:
                    self._unknown.add(model)
                    log.warning("no price for model %s: its requests cost 0", model)
                return 0.0
        return price.cost(usage)
