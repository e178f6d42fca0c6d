from typing import Any

import pytest

from langchain_hybrid import _models
from langchain_hybrid.chat_models._tokens import TokenBytes, Utf8Assembler


@pytest.fixture(scope="module")
def embedded_tokenizer() -> Any:
    """The embedded model's tokenizer alone, without its weights.

    Read from the converted cache when it is there, else from the GGUF file's
    metadata (slower, but still no weights).
    """
    from transformers import AutoTokenizer

    gguf = _models.embedded_gguf_path()
    folder = _models._gguf_cache_folder(gguf, _models.DEFAULT_MODEL_NAME)
    if (folder / _models._COMPLETE_MARKER).is_file():
        return AutoTokenizer.from_pretrained(folder)
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def test_assembler_holds_partial_characters() -> None:
    asm = Utf8Assembler()
    data = "naïve ☃ 日本".encode()
    out = "".join(asm.feed(data[i : i + 1]) for i in range(len(data)))
    assert out + asm.flush() == "naïve ☃ 日本"


def test_assembler_flush_replaces_truncated_bytes() -> None:
    asm = Utf8Assembler()
    assert asm.feed("é".encode()[:1]) == ""
    assert asm.flush() == "\ufffd"


@pytest.mark.parametrize(
    "text", ["Hello, world!", "  leading spaces", "naïve café ☃ 日本語 🙂", "line\nbreak\ttab"]
)
def test_token_bytes_concatenate_to_the_text(embedded_tokenizer: Any, text: str) -> None:
    ids = embedded_tokenizer(text, add_special_tokens=False)["input_ids"]
    token_bytes = TokenBytes(embedded_tokenizer)
    assert b"".join(token_bytes(i) for i in ids) == text.encode()
