"""Model prices and the cost of one call, in USD.

:class:`PriceTable` maps model names to :class:`ModelPrice` (USD per 1M input / output
tokens) and matches by longest prefix, so dated snapshots ("gpt-4o-2024-08-06") take the
price of their family ("gpt-4o"). :meth:`PriceTable.cost_of` prices a cloud call and logs
one warning per model it has no price for (counting it as 0.0);
:meth:`PriceTable.local_cost_of` prices a local call, where a missing price means free.
:func:`token_usage` reads the token counts an answer message reports.

Example:
    >>> table = PriceTable.default()
    >>> table.cost_of("gpt-4o-2024-08-06", input_tokens=1000, output_tokens=500)
    0.0075
    >>> table.lookup("HuggingFaceTB/SmolLM2-135M-Instruct") is None
    True
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage

__all__ = [
    "DEFAULT_PRICES",
    "PAPER_GPT4_PRICE",
    "PRICES_AS_OF",
    "ModelPrice",
    "PriceTable",
    "token_usage",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelPrice:
    """Price of a model in USD per 1M input and per 1M output tokens.

    Example:
        >>> ModelPrice(input_per_1m=2.5, output_per_1m=10.0).cost(1_000_000, 100_000)
        3.5
    """

    input_per_1m: float
    output_per_1m: float

    def __post_init__(self) -> None:
        for name in ("input_per_1m", "output_per_1m"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
            object.__setattr__(self, name, float(value))

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """Return the USD cost of a call with these token counts.

        Example:
            >>> ModelPrice(1.0, 2.0).cost(500_000, 250_000)
            1.0
        """
        if input_tokens < 0 or output_tokens < 0:
            raise ValueError("token counts must be >= 0")
        return (input_tokens * self.input_per_1m + output_tokens * self.output_per_1m) / 1e6

    def to_dict(self) -> dict[str, float]:
        """Return ``{"input_per_1m": ..., "output_per_1m": ...}``.

        Example:
            >>> ModelPrice(1, 2).to_dict()
            {'input_per_1m': 1.0, 'output_per_1m': 2.0}
        """
        return {"input_per_1m": self.input_per_1m, "output_per_1m": self.output_per_1m}


#: When :data:`DEFAULT_PRICES` were taken from OpenAI's published (standard tier) pricing.
PRICES_AS_OF = "2025-06"

#: OpenAI list prices in USD per 1M tokens (input, output) as of :data:`PRICES_AS_OF`.
#: More specific names (e.g. "gpt-4o-mini", "gpt-4o-2024-05-13") override their family
#: by longest-prefix matching.
DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    "gpt-4o": ModelPrice(2.50, 10.00),
    "gpt-4o-2024-05-13": ModelPrice(5.00, 15.00),
    "gpt-4o-mini": ModelPrice(0.15, 0.60),
    "gpt-4.1": ModelPrice(2.00, 8.00),
    "gpt-4.1-mini": ModelPrice(0.40, 1.60),
    "gpt-4.1-nano": ModelPrice(0.10, 0.40),
    "gpt-4-turbo": ModelPrice(10.00, 30.00),
    # The GPT-4 Turbo previews carry the "gpt-4-" prefix but GPT-4 Turbo's price.
    "gpt-4-1106-preview": ModelPrice(10.00, 30.00),
    "gpt-4-0125-preview": ModelPrice(10.00, 30.00),
    "gpt-4": ModelPrice(30.00, 60.00),
    "gpt-4-32k": ModelPrice(60.00, 120.00),
    "gpt-3.5-turbo": ModelPrice(0.50, 1.50),
    "o1": ModelPrice(15.00, 60.00),
    "o1-mini": ModelPrice(1.10, 4.40),
    "o3-mini": ModelPrice(1.10, 4.40),
}


#: The GPT-4 price of the hybrid-deployment paper: $0.03 / 1k prompt, $0.06 / 1k completion.
PAPER_GPT4_PRICE = ModelPrice(input_per_1m=30.0, output_per_1m=60.0)


class PriceTable(Mapping[str, ModelPrice]):
    """Model name -> :class:`ModelPrice`, with longest-prefix lookup.

    It is a read-only mapping keyed by the exact names it was built with; use
    :meth:`lookup` / :meth:`cost_of` for prefix matching. Unknown models cost 0.0, with one
    warning per table and model name from :meth:`cost_of`.

    Example:
        >>> table = PriceTable({"my-model": ModelPrice(1.0, 1.0)})
        >>> table.lookup("my-model-v2")
        ModelPrice(input_per_1m=1.0, output_per_1m=1.0)
        >>> len(PriceTable.default().merged(table)) == len(DEFAULT_PRICES) + 1
        True
    """

    def __init__(self, prices: Mapping[str, ModelPrice] | None = None) -> None:
        self._prices: dict[str, ModelPrice] = {}
        for name, price in (prices or {}).items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"model names must be non-empty strings, got {name!r}")
            if not isinstance(price, ModelPrice):
                raise ValueError(f"price of {name!r} must be a ModelPrice, got {price!r}")
            self._prices[name] = price
        self._warned: set[str] = set()

    @classmethod
    def default(cls) -> PriceTable:
        """Return a table with :data:`DEFAULT_PRICES`.

        Example:
            >>> PriceTable.default()["gpt-4o-mini"].input_per_1m
            0.15
        """
        return cls(DEFAULT_PRICES)

    @classmethod
    def paper_gpt4(cls, *models: str) -> PriceTable:
        """Return a table pricing ``models`` (default ``"gpt-4"``) at :data:`PAPER_GPT4_PRICE`.

        The GPT-4 prices of the hybrid-deployment paper, $0.03 per 1k prompt tokens and
        $0.06 per 1k completion tokens, for comparing with its figures. Names match by
        prefix as usual, so ``"gpt-4"`` also prices ``"gpt-4-1106-preview"``.

        Example:
            >>> PriceTable.paper_gpt4().cost_of("gpt-4-1106-preview", 1000, 1000)
            0.09
            >>> PriceTable.paper_gpt4("mixtral").cost_of("mixtral-8x7b", 2000, 0)
            0.06
        """
        return cls(dict.fromkeys(models or ("gpt-4",), PAPER_GPT4_PRICE))

    def __getitem__(self, name: str) -> ModelPrice:
        return self._prices[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._prices)

    def __len__(self) -> int:
        return len(self._prices)

    def __repr__(self) -> str:
        return f"PriceTable({self._prices!r})"

    def lookup(self, model_name: str) -> ModelPrice | None:
        """Return the price of the longest table name that prefixes ``model_name``, or None.

        Example:
            >>> t = PriceTable.default()
            >>> t.lookup("gpt-4-0613") == t["gpt-4"]
            True
            >>> t.lookup("gpt-4o-mini-2024-07-18") == t["gpt-4o-mini"]
            True
        """
        best: str | None = None
        for name in self._prices:
            if model_name.startswith(name) and (best is None or len(name) > len(best)):
                best = name
        return None if best is None else self._prices[best]

    def cost_of(self, model_name: str, input_tokens: int, output_tokens: int) -> float:
        """Return the USD cost of a call; 0.0 (and one logged warning) for an unknown model.

        Example:
            >>> PriceTable.default().cost_of("gpt-4o-mini", 1_000_000, 0)
            0.15
            >>> PriceTable().cost_of("unknown-model", 10, 10)
            0.0
        """
        price = self.lookup(model_name)
        if price is None:
            if model_name not in self._warned:
                self._warned.add(model_name)
                what = f"model {model_name!r}" if model_name else "an answer that names no model"
                logger.warning(
                    "no price known for %s; counting its cost as 0.0 (pass prices="
                    "PriceTable.default().merged({name: ModelPrice(...)}) to count it)",
                    what,
                )
            return 0.0
        return price.cost(input_tokens, output_tokens)

    def local_cost_of(self, model_name: str, input_tokens: int, output_tokens: int) -> float:
        """Return the USD cost of a local call: 0.0, without a warning, when unpriced.

        Example:
            >>> PriceTable.default().local_cost_of("SmolLM2-135M-Instruct", 100, 100)
            0.0
        """
        price = self.lookup(model_name)
        return 0.0 if price is None else price.cost(input_tokens, output_tokens)

    def merged(self, other: Mapping[str, ModelPrice]) -> PriceTable:
        """Return a new table with ``other``'s prices added (overriding same names).

        Example:
            >>> t = PriceTable.default().merged({"gpt-4o": ModelPrice(1.0, 1.0)})
            >>> t["gpt-4o"].output_per_1m
            1.0
        """
        return PriceTable({**self._prices, **other})

    def to_dict(self) -> dict[str, dict[str, float]]:
        """Return ``{model: {"input_per_1m": ..., "output_per_1m": ...}}`` (JSON-safe).

        Example:
            >>> PriceTable({"m": ModelPrice(1, 2)}).to_dict()
            {'m': {'input_per_1m': 1.0, 'output_per_1m': 2.0}}
        """
        return {name: price.to_dict() for name, price in self._prices.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriceTable:
        """Build a table from :meth:`to_dict` output; raises ``ValueError`` on bad content.

        Example:
            >>> t = PriceTable.from_dict({"m": {"input_per_1m": 1, "output_per_1m": 2}})
            >>> t["m"].output_per_1m
            2.0
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a price table must be a mapping, got {type(data).__name__}")
        prices: dict[str, ModelPrice] = {}
        for name, entry in data.items():
            if not isinstance(entry, Mapping) or set(entry) != {"input_per_1m", "output_per_1m"}:
                raise ValueError(
                    f"price of {name!r} must be {{'input_per_1m': ..., 'output_per_1m': ...}}, "
                    f"got {entry!r}"
                )
            prices[name] = ModelPrice(entry["input_per_1m"], entry["output_per_1m"])
        return cls(prices)


def token_usage(message: BaseMessage | None) -> tuple[int, int]:
    """Return ``(input tokens, output tokens)`` an answer reports; zeros when it reports none.

    Example:
        >>> from langchain_core.messages import AIMessage
        >>> token_usage(AIMessage("hi", usage_metadata={
        ...     "input_tokens": 3, "output_tokens": 1, "total_tokens": 4}))
        (3, 1)
    """
    usage = getattr(message, "usage_metadata", None) if message is not None else None
    if not usage:
        return 0, 0
    return int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
