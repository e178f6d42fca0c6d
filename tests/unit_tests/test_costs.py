from __future__ import annotations

import json
import logging

import pytest
from langchain_core.messages import AIMessage

from langchain_hybrid.costs import DEFAULT_PRICES, ModelPrice, PriceTable, token_usage


def test_default_table_covers_current_openai_models() -> None:
    for name in [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4-turbo",
        "gpt-4",
        "gpt-3.5-turbo",
        "o1",
        "o3-mini",
    ]:
        assert name in DEFAULT_PRICES
    table = PriceTable.default()
    assert table["gpt-4o"] == ModelPrice(2.50, 10.00)
    assert table["gpt-4o-mini"] == ModelPrice(0.15, 0.60)
    for price in table.values():
        assert price.output_per_1m >= price.input_per_1m > 0


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4-turbo-2024-04-09", "gpt-4-turbo"),
        ("gpt-4-0613", "gpt-4"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("o1-2024-12-17", "o1"),
        ("o1-mini-2024-09-12", "o1-mini"),
        ("o3-mini-2025-01-31", "o3-mini"),
    ],
)
def test_longest_prefix_match(model: str, family: str) -> None:
    table = PriceTable.default()
    assert table.lookup(model) is table[family]


def test_cost_arithmetic() -> None:
    table = PriceTable.default()
    # 1000 * 2.50 / 1M + 500 * 10.00 / 1M
    assert table.cost_of("gpt-4o-2024-08-06", 1000, 500) == pytest.approx(0.0075)
    assert table.cost_of("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert table.cost_of("gpt-4o", 0, 0) == 0.0
    assert table.cost_of("gpt-4", 100, 100) == pytest.approx((100 * 30 + 100 * 60) / 1e6)
    custom = PriceTable({"x": ModelPrice(1.0, 1.0)})
    assert custom.cost_of("x-1", 1_000_000, 0) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        ModelPrice(1.0, 1.0).cost(-1, 0)


def test_unknown_model_costs_zero_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    table = PriceTable.default()
    with caplog.at_level(logging.WARNING, logger="langchain_hybrid.costs"):
        for _ in range(3):
            assert table.cost_of("HuggingFaceTB/SmolLM2-135M-Instruct", 100, 100) == 0.0
        assert table.cost_of("claude-something", 1, 1) == 0.0
    messages = [r.getMessage() for r in caplog.records if r.name == "langchain_hybrid.costs"]
    assert len(messages) == 2
    assert "SmolLM2" in messages[0] and "claude-something" in messages[1]
    # lookup itself never warns
    caplog.clear()
    assert table.lookup("another-unknown") is None
    assert not caplog.records


def test_local_cost_is_free_and_silent_when_unpriced(caplog: pytest.LogCaptureFixture) -> None:
    table = PriceTable.default()
    with caplog.at_level(logging.WARNING, logger="langchain_hybrid.costs"):
        assert table.local_cost_of("SmolLM2-135M-Instruct", 1000, 1000) == 0.0
    assert not caplog.records
    assert table.local_cost_of("gpt-4o", 1_000_000, 0) == pytest.approx(2.5)


def test_token_usage_of_a_message() -> None:
    usage = {"input_tokens": 12, "output_tokens": 3, "total_tokens": 15}
    assert token_usage(AIMessage("hi", usage_metadata=usage)) == (12, 3)  # type: ignore[arg-type]
    assert token_usage(AIMessage("hi")) == (0, 0)
    assert token_usage(None) == (0, 0)


def test_local_models_can_be_priced() -> None:
    table = PriceTable.default().merged({"HuggingFaceTB/": ModelPrice(0.01, 0.02)})
    assert table.cost_of("HuggingFaceTB/SmolLM2-135M-Instruct", 1_000_000, 0) == pytest.approx(0.01)
    assert table["gpt-4o"] == DEFAULT_PRICES["gpt-4o"]


def test_dict_round_trip() -> None:
    table = PriceTable.default()
    data = json.loads(json.dumps(table.to_dict()))
    assert data["gpt-4o"] == {"input_per_1m": 2.5, "output_per_1m": 10.0}
    restored = PriceTable.from_dict(data)
    assert dict(restored) == dict(table)


@pytest.mark.parametrize(
    "data",
    [
        {"m": {"input_per_1m": 1.0}},
        {"m": {"input_per_1m": 1.0, "output_per_1m": -2.0}},
        {"m": {"input_per_1m": float("nan"), "output_per_1m": 1.0}},
        {"m": {"input_per_1m": "cheap", "output_per_1m": 1.0}},
        {"m": 3.0},
        [1, 2],
    ],
)
def test_from_dict_rejects_bad_content(data: object) -> None:
    with pytest.raises(ValueError):
        PriceTable.from_dict(data)  # type: ignore[arg-type]


def test_table_is_a_read_only_mapping() -> None:
    table = PriceTable({"a": ModelPrice(1, 2)})
    assert list(table) == ["a"] and len(table) == 1 and "a" in table
    with pytest.raises(TypeError):
        table["b"] = ModelPrice(1, 1)  # type: ignore[index]
    with pytest.raises(ValueError):
        PriceTable({"a": (1, 2)})  # type: ignore[dict-item]


def test_an_answer_without_a_model_name_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    table = PriceTable.default()
    with caplog.at_level(logging.WARNING, logger="langchain_hybrid.costs"):
        assert table.cost_of("", 10, 10) == table.cost_of("", 10, 10) == 0.0
    (record,) = caplog.records
    assert "names no model" in record.getMessage()
