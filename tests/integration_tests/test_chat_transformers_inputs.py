"""Bad inputs give clear, typed errors before any generation (on the loaded embedded model).

Invalid constructor parameters fail before any weights load: those tests are in
``tests/unit_tests/test_chat_transformers_params.py``.
"""

import pytest
from langchain_core.messages import AIMessage, ChatMessage, HumanMessage, SystemMessage, ToolMessage

from langchain_hybrid import ChatTransformers
from langchain_hybrid.errors import (
    ChatTemplateMissingError,
    ContextWindowExceededError,
    InvalidMessagesError,
)


def test_empty_message_list(local_llm: ChatTransformers) -> None:
    with pytest.raises(InvalidMessagesError, match="empty list of messages"):
        local_llm.invoke([])


def test_unknown_role(local_llm: ChatTransformers) -> None:
    with pytest.raises(InvalidMessagesError, match="narrator"):
        local_llm.invoke([ChatMessage(role="narrator", content="Once upon a time")])


def test_non_text_content(local_llm: ChatTransformers) -> None:
    message = HumanMessage(
        content=[
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ]
    )
    with pytest.raises(InvalidMessagesError, match="text-only"):
        local_llm.invoke([message])


def test_unsupported_call_option(local_llm: ChatTransformers) -> None:
    with pytest.raises(TypeError, match="frequency_penalty"):
        local_llm.invoke("hi", frequency_penalty=1.0)


def test_all_roles_render(local_llm: ChatTransformers) -> None:
    messages = [
        SystemMessage("You are terse."),
        HumanMessage("What is 2+2?"),
        AIMessage("", tool_calls=[{"name": "add", "args": {"a": 2, "b": 2}, "id": "c1"}]),
        ToolMessage("4", tool_call_id="c1"),
        ChatMessage(role="user", content=[{"type": "text", "text": "So?"}]),
    ]
    rendered = local_llm._loaded.tokenizer.decode(local_llm._prompt_ids(messages))
    for text in ["You are terse.", "What is 2+2?", "So?"]:
        assert text in rendered
    assert local_llm.get_num_tokens_from_messages(messages) == len(local_llm._prompt_ids(messages))


def test_missing_chat_template(
    local_llm: ChatTransformers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_llm._loaded.tokenizer, "chat_template", None)
    with pytest.raises(ChatTemplateMissingError, match="chat_template="):
        local_llm.invoke("hi")
    templated = ChatTransformers(
        max_tokens=4,
        chat_template="{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}",
    )
    assert templated._prompt_ids([HumanMessage("hi")])


def test_context_window_exceeded(local_llm: ChatTransformers) -> None:
    window = local_llm.context_window
    assert window is not None
    with pytest.raises(ContextWindowExceededError, match="max_tokens"):
        local_llm.invoke("hi", max_tokens=window)
