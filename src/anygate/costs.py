"""What one answer cost, from its usage and the prices a deployment's ``model_info`` gives.

The prices are LiteLLM's ``model_info`` keys, in dollars per token: ``input_cost_per_token``,
``output_cost_per_token``, ``cache_read_input_token_cost`` and ``cache_creation_input_token_cost``. A
cache price that is not configured falls back to the input price (what the tokens would have cost
uncached); a deployment with no prices at all has no cost (``None``), which is not the same as free.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from anygate.hooks import Usage

INPUT_PRICE: Final = "input_cost_per_token"
OUTPUT_PRICE: Final = "output_cost_per_token"
CACHE_READ_PRICE: Final = "cache_read_input_token_cost"
CACHE_CREATION_PRICE: Final = "cache_creation_input_token_cost"


def usage_cost(model_info: Mapping[str, Any], usage: Usage | None) -> float | None:
    """Dollars for ``usage`` at the prices of ``model_info``; None when no price is configured."""
    input_price = _price(model_info, INPUT_PRICE)
    output_price = _price(model_info, OUTPUT_PRICE)
    if input_price is None and output_price is None:
        return None
    if usage is None:
        return 0.0
    input_price = input_price or 0.0
    cache_read = _price(model_info, CACHE_READ_PRICE)
    cache_creation = _price(model_info, CACHE_CREATION_PRICE)
    return (
        usage.input_tokens * input_price
        + usage.output_tokens * (output_price or 0.0)
        + usage.cache_read_input_tokens * (input_price if cache_read is None else cache_read)
        + usage.cache_creation_input_tokens * (input_price if cache_creation is None else cache_creation)
    )


def _price(model_info: Mapping[str, Any], key: str) -> float | None:
    value = model_info.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None
