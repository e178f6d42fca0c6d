from langchain_hybrid.chat_models._tokens import Utf8Assembler


def test_assembler_holds_partial_characters() -> None:
    asm = Utf8Assembler()
    data = "naïve ☃ 日本".encode()
    out = "".join(asm.feed(data[i : i + 1]) for i in range(len(data)))
    assert out + asm.flush() == "naïve ☃ 日本"


def test_assembler_flush_replaces_truncated_bytes() -> None:
    asm = Utf8Assembler()
    assert asm.feed("é".encode()[:1]) == ""
    assert asm.flush() == "\ufffd"
