"""Estimated cost of a run from token counts and a price table.

Prices are US dollars per million tokens (input, output), as OpenAI lists them; they
change, so the table can be extended or overridden with the `prices` setting
(`REFINE_KIT_PRICES='{"my-model": [0.5, 1.5]}'`). Unknown models get no estimate rather
than a wrong one.

The built-in prices are OpenAI's, so they apply only to OpenAI's own API (and the offline
model's zero to the offline model): a model called `gpt-4o-mini` behind a gateway, a local
server or a reseller costs what that endpoint charges, which only the user can say.
"""

from __future__ import annotations

from refine_kit import endpoint as endpoints
from refine_kit.settings import OFFLINE_MODEL

#: USD per 1M tokens: (input, output).
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    OFFLINE_MODEL: (0.0, 0.0),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
}


def estimate_cost(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    prices: dict[str, tuple[float, float]] | None = None,
    *,
    endpoint: str = "offline",
) -> float | None:
    """Dollars for these tokens, or None when the model's price at `endpoint` is unknown.

    `endpoint` is where the calls went, as results record it: "offline" or a URL.
    """
    if endpoint == "offline":
        built_in = {OFFLINE_MODEL: DEFAULT_PRICES[OFFLINE_MODEL]}
    elif endpoints.is_openai(endpoint):
        built_in = DEFAULT_PRICES
    else:
        built_in = {}
    table = {**built_in, **(prices or {})}
    price = table.get(model)
    if price is None:
        return None
    return round((prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000, 6)
