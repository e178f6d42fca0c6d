"""Local tool calling and structured output on the embedded model (SmolLM2-135M-Instruct)."""

import json
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableParallel
from pydantic import BaseModel, Field

from langchain_hybrid import ChatTransformers
from langchain_hybrid.chat_models.transformers import _BATCH_GROUP


class GetWeather(BaseModel):
    """Get the current weather of a city."""

    city: str = Field(description="the city's name")
    unit: str = Field(default="celsius", description="celsius or fahrenheit")


class Person(BaseModel):
    """A person mentioned in a text."""

    name: str
    age: int


TEXT = "Alice Smith is 34 years old and lives in Paris."


def test_a_required_tool_call_is_valid_and_parsed(local_llm: ChatTransformers) -> None:
    msg = local_llm.bind_tools([GetWeather], tool_choice="any").invoke(
        "What is the weather in Paris?"
    )
    assert msg.invalid_tool_calls == []
    (call,) = msg.tool_calls
    assert call["name"] == "GetWeather" and call["id"]
    GetWeather.model_validate(call["args"])
    assert msg.response_metadata["finish_reason"] == "tool_calls"


def test_the_recorded_logprobs_are_the_raw_ones_not_the_masked(local_llm: ChatTransformers) -> None:
    import torch

    bound = local_llm.bind_tools([GetWeather], tool_choice="GetWeather")
    msg = bound.invoke("What is the weather in Paris?")
    first = msg.response_metadata["logprobs"]["content"][0]
    # The same prompt through a separate forward pass: the first token's recorded
    # log-prob is the model's own (raw) log-prob of it, not one renormalised over the
    # tokens the grammar allowed (which would be 0 where it allows a single token).
    request, _ = local_llm._request(
        [HumanMessage("What is the weather in Paris?")],
        None,
        dict(bound.kwargs),  # type: ignore[attr-defined]
        streaming=False,
    )
    with torch.inference_mode():
        logits = local_llm._loaded.model(torch.tensor([request.prompt_ids])).logits[0, -1]
    raw = torch.log_softmax(logits.float(), dim=-1)
    engine = local_llm._engine
    ids = [i for i in range(raw.shape[0]) if list(engine.token_bytes(i)) == first["bytes"]]
    assert ids, first
    assert min(abs(float(raw[i]) - first["logprob"]) for i in ids) < 1e-3


def test_json_schema_output_validates(local_llm: ChatTransformers) -> None:
    schema = {
        "type": "json_schema",
        "json_schema": {"name": "Person", "schema": Person.model_json_schema()},
    }
    msg = local_llm.invoke(TEXT, response_format=schema)
    Person.model_validate(json.loads(msg.text))
    assert msg.response_metadata["logprobs"]["content"]


@pytest.mark.parametrize("method", ["json_schema", "function_calling", "json_mode"])
def test_with_structured_output_include_raw(local_llm: ChatTransformers, method: str) -> None:
    out = local_llm.with_structured_output(Person, method=method, include_raw=True).invoke(
        f"Extract the person as JSON with name and age: {TEXT}"
    )
    assert set(out) == {"raw", "parsed", "parsing_error"}
    assert isinstance(out["raw"], AIMessage)
    assert out["raw"].response_metadata["logprobs"]["content"]
    if method == "json_mode":  # any JSON object: Person's fields are not enforced
        assert out["parsed"] is not None or out["parsing_error"] is not None
    else:
        assert out["parsing_error"] is None
        assert isinstance(out["parsed"], Person)


def test_streaming_tool_calls_yield_tool_call_chunks(local_llm: ChatTransformers) -> None:
    bound = local_llm.bind_tools([GetWeather], tool_choice="any")
    chunks = list(bound.stream("What is the weather in Rome?"))
    assert any(c.tool_call_chunks for c in chunks)
    full: Any = None
    for chunk in chunks:
        full = chunk if full is None else full + chunk
    assert isinstance(full, AIMessageChunk)
    invoked = bound.invoke("What is the weather in Rome?")
    assert [(c["name"], c["args"]) for c in full.tool_calls] == [
        (c["name"], c["args"]) for c in invoked.tool_calls
    ]
    assert len(full.response_metadata["logprobs"]["content"]) == len(
        invoked.response_metadata["logprobs"]["content"]
    )


def test_mixed_constrained_and_free_requests_share_one_engine_batch(
    local_llm: ChatTransformers, engine_batch_sizes: list[int]
) -> None:
    parallel = RunnableParallel(
        tool=local_llm.bind_tools([GetWeather], tool_choice="any"),
        person=local_llm.with_structured_output(Person),
        free=local_llm,
    )
    token = _BATCH_GROUP.set((987654321, 3))
    try:
        out = parallel.invoke("What is the weather in Paris?")
    finally:
        _BATCH_GROUP.reset(token)
    assert engine_batch_sizes == [3]
    GetWeather.model_validate(out["tool"].tool_calls[0]["args"])
    assert isinstance(out["person"], Person)
    assert out["free"].content == local_llm.invoke("What is the weather in Paris?").content


def test_constrained_decoding_can_be_switched_off(local_llm: ChatTransformers) -> None:
    off = local_llm.model_copy(update={"constrained_decoding": False})
    messages = [HumanMessage("Weather in Paris?")]
    bound = local_llm.bind_tools([GetWeather], tool_choice="any")
    options = bound.kwargs  # type: ignore[attr-defined]
    assert off._request(messages, None, dict(options), streaming=False)[0].constraint is None
    assert local_llm._request(messages, None, dict(options), streaming=False)[0].constraint


def _prompt(llm: ChatTransformers, messages: list[Any], **options: Any) -> str:
    request, _ = llm._request(messages, None, options, streaming=False)
    return str(llm._loaded.tokenizer.decode(request.prompt_ids))


HISTORY: list[Any] = [
    HumanMessage("What is the weather in Paris and in Rome?"),
    AIMessage(
        "",
        tool_calls=[
            {"name": "GetWeather", "args": {"city": "Paris"}, "id": "call_1"},
            {"name": "GetWeather", "args": {"city": "Rome"}, "id": "call_2"},
        ],
    ),
    ToolMessage("sunny, 24 C", tool_call_id="call_1"),
    ToolMessage(
        [{"type": "text", "text": "station offline"}], tool_call_id="call_2", status="error"
    ),
]


def test_tool_histories_are_rendered_into_a_template_without_tools(
    local_llm: ChatTransformers,
) -> None:
    assert not local_llm.native_tools
    bound = local_llm.bind_tools([GetWeather])
    prompt = _prompt(local_llm, HISTORY, **bound.kwargs)  # type: ignore[attr-defined]
    assert "<tools>" in prompt and '"name": "GetWeather"' in prompt
    assert prompt.count("<tool_call>") >= 2 and '"city": "Rome"' in prompt
    assert "sunny, 24 C" in prompt and "station offline" in prompt
    assert '"status": "error"' in prompt
    answer = bound.invoke(HISTORY)
    assert answer.text or answer.tool_calls


NATIVE_TEMPLATE = (
    "{% if tools %}<|im_start|>system\nTools:\n{% for t in tools %}{{ t | tojson }}\n"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
    "{% if m.tool_calls %}{% for c in m.tool_calls %}\n<tool_call>\n"
    '{"name": "{{ c.function.name }}", "arguments": {{ c.function.arguments | tojson }}}'
    "\n</tool_call>{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_a_template_that_knows_tools_renders_them_itself(local_llm: ChatTransformers) -> None:
    native = ChatTransformers(max_tokens=48, chat_template=NATIVE_TEMPLATE)
    assert native.native_tools
    bound = native.bind_tools([GetWeather])
    prompt = _prompt(native, HISTORY, **bound.kwargs)  # type: ignore[attr-defined]
    assert prompt.startswith("<|im_start|>system\nTools:\n{")
    assert "<tools>" not in prompt  # no second, generic listing
    assert "<|im_start|>tool\nsunny, 24 C" in prompt
    assert "<|im_start|>tool\nError: station offline" in prompt
    assert '"arguments": {"city": "Rome"}' in prompt
    msg = native.bind_tools([GetWeather], tool_choice="any").invoke("Weather in Oslo?")
    GetWeather.model_validate(msg.tool_calls[0]["args"])
