"""Exact token bytes with the embedded model's tokenizer."""

from typing import Any

import pytest

from langchain_hybrid.chat_models._tokens import TokenBytes


@pytest.mark.parametrize(
    "text", ["Hello, world!", "  leading spaces", "naïve café ☃ 日本語 🙂", "line\nbreak\ttab"]
)
def test_token_bytes_concatenate_to_the_text(embedded_tokenizer: Any, text: str) -> None:
    ids = embedded_tokenizer(text, add_special_tokens=False)["input_ids"]
    token_bytes = TokenBytes(embedded_tokenizer)
    assert b"".join(token_bytes(i) for i in ids) == text.encode()
