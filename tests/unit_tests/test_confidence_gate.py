"""ConfidenceGate: the confidence gate as an LCEL Runnable, with real LangChain runnables.

Tiers are real runnables: ``RunnableLambda``s answering ``AIMessage``s with chosen
log-probs (and recording what they were called with), ``GenericFakeChatModel``s, LCEL
chains (``prompt | model``, a RAG-like ``RunnableParallel``) and a real ``ChatOpenAI``
answered, without a socket, by the :class:`MockOpenAI` fake of the OpenAI API.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompt_values import ChatPromptValue
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import (
    ConfigurableField,
    Runnable,
    RunnableConfig,
    RunnableLambda,
    RunnableParallel,
)

from langchain_hybrid import BothTiersFailedError, ConfidenceGate
from langchain_hybrid.costs import PriceTable
from langchain_hybrid.routing import (
    ForceCloudRule,
    MinLogprobScorer,
    PolicyRule,
    RouteDecision,
    RoutingPolicy,
)
from langchain_hybrid.routing.gate import DEFAULT_THRESHOLD, find_message
from tests.support.fixtures import make_chat_openai
from tests.support.openai_fake import Fault, ScriptedReply
from tests.support.openai_mock import MockOpenAI

THRESHOLD = -0.6
SURE = -0.05  # per-token log-prob of a confident answer (mean -0.05 >= -0.6)
UNSURE = -2.0  # per-token log-prob of an unconfident answer (mean -2.0 < -0.6)
QUESTION = "What is the capital of France?"
CLOUD_TEXT = "The capital of France is Paris, on the Seine."


# --------------------------------------------------------------------------- helpers


def logprobs(tokens: Iterable[str], values: float | list[float]) -> dict[str, Any]:
    """OpenAI chat-completions log-probs for ``tokens``."""
    tokens = list(tokens)
    per_token = values if isinstance(values, list) else [values] * len(tokens)
    assert len(per_token) == len(tokens)
    return {
        "content": [
            {"token": t, "logprob": v, "bytes": list(t.encode()), "top_logprobs": []}
            for t, v in zip(tokens, per_token, strict=True)
        ]
    }


def answer(text: str, values: float | list[float] | None, **metadata: Any) -> AIMessage:
    """An AIMessage with one log-prob entry per whitespace-separated word (None: no log-probs)."""
    words = text.split(" ")
    tokens = [words[0]] + [" " + w for w in words[1:]]
    meta = dict(metadata)
    if values is not None:
        meta["logprobs"] = logprobs(tokens, values)
    return AIMessage(content=text, response_metadata=meta)


def routing(output: Any) -> dict[str, Any]:
    """The decision attached to an AIMessage output."""
    assert isinstance(output, AIMessage), output
    decision: dict[str, Any] = output.response_metadata["routing"]
    assert RouteDecision.from_dict(decision).as_dict() == decision  # a full, valid record
    json.dumps(decision)  # JSON-safe
    return decision


class Tier:
    """A tier as a real ``RunnableLambda`` (sync and async) that records its inputs."""

    def __init__(self, reply: Callable[[Any], Any]) -> None:
        self.reply = reply
        self.inputs: list[Any] = []
        self._lock = threading.Lock()
        self.runnable: Runnable[Any, Any] = RunnableLambda(self._call, afunc=self._acall)

    def _call(self, value: Any) -> Any:
        with self._lock:
            self.inputs.append(value)
        return self.reply(value)

    async def _acall(self, value: Any) -> Any:
        return self._call(value)

    @property
    def calls(self) -> int:
        return len(self.inputs)


def failing(message: str, error: type[Exception] = RuntimeError) -> Callable[[Any], Any]:
    def fail(_: Any) -> Any:
        raise error(message)

    return fail


def gate_of(
    primary: Tier | Runnable[Any, Any], fallback: Tier | Runnable[Any, Any], **kw: Any
) -> ConfidenceGate:
    kw.setdefault("threshold", THRESHOLD)
    return ConfidenceGate(
        primary=primary.runnable if isinstance(primary, Tier) else primary,
        fallback=fallback.runnable if isinstance(fallback, Tier) else fallback,
        **kw,
    )


@dataclass
class Run:
    name: str | None
    run_id: UUID
    parent_run_id: UUID | None
    kind: str


class Recorder(BaseCallbackHandler):
    """Records run starts (chains and chat models) and custom events."""

    raise_error = True

    def __init__(self) -> None:
        self.runs: list[Run] = []
        self.events: list[tuple[str, Any, UUID]] = []

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self.runs.append(Run(kwargs.get("name"), run_id, parent_run_id, "chain"))

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self.runs.append(Run(kwargs.get("name"), run_id, parent_run_id, "chat_model"))

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.events.append((name, data, run_id))

    def named(self, name: str) -> list[Run]:
        return [r for r in self.runs if r.name == name]

    def one(self, name: str) -> Run:
        runs = self.named(name)
        assert len(runs) == 1, (name, self.runs)
        return runs[0]

    def route_events(self) -> list[tuple[Any, UUID]]:
        return [(data, run_id) for name, data, run_id in self.events if name == "hybrid_route"]


def confident_tier(text: str = "Paris") -> Tier:
    return Tier(lambda _: answer(text, SURE))


def unsure_tier(text: str = "Maybe Lyon") -> Tier:
    return Tier(lambda _: answer(text, UNSURE))


def cloud_tier(text: str = CLOUD_TEXT) -> Tier:
    return Tier(lambda _: AIMessage(text, response_metadata={"model_name": "gpt-4o"}))


def fake_chat(*messages: AIMessage | str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter(messages))


def merge(chunks: list[Any]) -> Any:
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    return merged


# --------------------------------------------------------------------------- construction


def test_positional_primary_and_fallback_as_in_the_design() -> None:
    primary = fake_chat(answer("Paris", SURE))
    fallback = fake_chat(AIMessage("unused"))
    gate = ConfidenceGate(primary, fallback, MinLogprobScorer(), -0.5)
    assert gate.primary is primary and gate.fallback is fallback
    assert isinstance(gate.scorer, MinLogprobScorer) and gate.threshold == -0.5
    assert routing(gate.invoke(QUESTION))["scorer"] == "min_logprob"


def test_defaults_mean_logprob_scorer_and_default_threshold() -> None:
    gate = ConfidenceGate(primary=confident_tier().runnable, fallback=cloud_tier().runnable)
    assert gate.routing_policy == RoutingPolicy(threshold=DEFAULT_THRESHOLD)
    decision = routing(gate.invoke(QUESTION))
    assert decision["threshold"] == DEFAULT_THRESHOLD
    assert decision["scorer"] == "mean_logprob"


# --------------------------------------------------------------------------- decisions


def test_confident_primary_is_returned_and_fallback_never_called() -> None:
    primary, fallback = confident_tier("The capital is Paris"), cloud_tier()
    out = gate_of(primary, fallback).invoke(QUESTION)

    assert isinstance(out, AIMessage)
    assert out.content == "The capital is Paris"
    assert out.response_metadata["logprobs"]["content"][0]["token"] == "The"  # kept
    decision = routing(out)
    assert decision["tier"] == "local" and decision["reason"] == "confident"
    assert decision["escalated"] is False and decision["degraded"] is False
    assert decision["confidence"] == pytest.approx(SURE)
    assert decision["threshold"] == THRESHOLD
    assert decision["features"]["n_tokens"] == 4.0
    assert decision["local_output_tokens"] == 4
    assert decision["local_latency_s"] >= 0.0 and decision["cloud_latency_s"] is None
    assert decision["cost_usd"] == 0.0 and decision["error"] is None
    assert primary.inputs == [QUESTION]
    assert fallback.calls == 0


def test_unconfident_primary_escalates_to_fallback_with_same_input() -> None:
    primary, fallback = unsure_tier("Maybe Lyon"), cloud_tier()
    question = {"question": QUESTION}
    out = gate_of(primary, fallback).invoke(question)

    assert out.content == CLOUD_TEXT
    decision = routing(out)
    assert decision["tier"] == "cloud" and decision["reason"] == "low_confidence"
    assert decision["escalated"] is True and decision["degraded"] is False
    assert decision["confidence"] == pytest.approx(UNSURE)
    assert decision["confidence"] < decision["threshold"] == THRESHOLD
    assert decision["local_output_tokens"] == 2  # local tokens spent are still counted
    assert decision["cloud_latency_s"] is not None and decision["cloud_latency_s"] >= 0.0
    assert out.response_metadata["model_name"] == "gpt-4o"  # the fallback's own metadata
    assert primary.inputs == [question] and fallback.inputs == [question]


@pytest.mark.parametrize(
    ("value", "tier", "reason"),
    [(THRESHOLD, "local", "confident"), (THRESHOLD - 1e-6, "cloud", "low_confidence")],
)
def test_threshold_boundary_is_inclusive(value: float, tier: str, reason: str) -> None:
    fallback = cloud_tier()
    out = gate_of(Tier(lambda _: answer("Paris", value)), fallback).invoke(QUESTION)
    decision = routing(out)
    assert (decision["tier"], decision["reason"]) == (tier, reason)
    assert fallback.calls == (1 if tier == "cloud" else 0)


def test_hedging_answer_escalates_despite_confident_logprobs() -> None:
    primary = Tier(lambda _: answer("I'm not sure, perhaps Paris", SURE))
    fallback = cloud_tier()
    out = gate_of(primary, fallback).invoke(QUESTION)

    decision = routing(out)
    assert out.content == CLOUD_TEXT
    assert decision["reason"] == "hedge" and decision["tier"] == "cloud"
    assert decision["confidence"] == pytest.approx(SURE)  # the score itself was high
    assert decision["features"]["hedge"] == 1.0
    assert fallback.calls == 1


def test_missing_logprobs_escalate_with_reason_no_logprobs() -> None:
    primary = fake_chat(AIMessage("Paris"))  # a chat model that reports no log-probs
    fallback = cloud_tier()
    out = gate_of(primary, fallback).invoke(QUESTION)

    decision = routing(out)
    assert out.content == CLOUD_TEXT
    assert decision["reason"] == "no_logprobs" and decision["tier"] == "cloud"
    assert decision["escalated"] is True
    assert fallback.inputs == [QUESTION]


def test_chat_models_as_both_tiers() -> None:
    gate = gate_of(fake_chat(answer("Lyon", UNSURE)), fake_chat(AIMessage("Paris")))
    out = gate.invoke(QUESTION)
    assert out.content == "Paris"
    assert routing(out)["tier"] == "cloud"


# --------------------------------------------------------------------------- policy


# Mean -0.507 is above -1.0; the minimum, -1.5, is below it.
MIXED = [-0.01, -0.01, -1.5]


def mixed_tier() -> Tier:
    return Tier(lambda _: answer("It is Paris", MIXED))


def test_policy_scorer_and_threshold_are_honoured() -> None:
    policy = RoutingPolicy(threshold=-1.0, scorer=MinLogprobScorer(), version="cal-7")

    mean_fallback = cloud_tier()
    kept = ConfidenceGate(
        primary=mixed_tier().runnable, fallback=mean_fallback.runnable, threshold=-1.0
    ).invoke(QUESTION)
    assert routing(kept)["reason"] == "confident" and mean_fallback.calls == 0

    fallback = cloud_tier()
    gate = ConfidenceGate(primary=mixed_tier().runnable, fallback=fallback.runnable, policy=policy)
    assert gate.routing_policy == policy
    decision = routing(gate.invoke(QUESTION))
    assert decision["scorer"] == "min_logprob"
    assert decision["confidence"] == pytest.approx(-1.5)
    assert decision["threshold"] == -1.0
    assert decision["policy_version"] == "cal-7"
    assert (decision["tier"], decision["reason"]) == ("cloud", "low_confidence")
    assert fallback.calls == 1


def test_threshold_overrides_the_policy_threshold_but_keeps_its_scorer() -> None:
    rules: list[PolicyRule] = [ForceCloudRule(pattern="(?i)legal")]
    policy = RoutingPolicy(threshold=-1.0, scorer=MinLogprobScorer(), rules=rules, version="cal-7")
    fallback = cloud_tier()
    gate = ConfidenceGate(
        primary=mixed_tier().runnable, fallback=fallback.runnable, policy=policy, threshold=-2.0
    )
    effective = gate.routing_policy
    assert effective.threshold == -2.0 and isinstance(effective.scorer, MinLogprobScorer)
    assert effective.rules == tuple(rules)  # the rest of the policy kept
    decision = routing(gate.invoke(QUESTION))
    assert decision["threshold"] == -2.0
    assert decision["scorer"] == "min_logprob" and decision["policy_version"] == "cal-7"
    assert decision["confidence"] == pytest.approx(-1.5)
    assert (decision["tier"], decision["reason"]) == ("local", "confident")
    assert fallback.calls == 0
    assert policy.threshold == -1.0  # the caller's policy is not modified


def test_scorer_overrides_the_policy_scorer() -> None:
    policy = RoutingPolicy(threshold=-1.0, version="cal-7")  # mean log-prob
    fallback = cloud_tier()
    gate = ConfidenceGate(
        primary=mixed_tier().runnable,
        fallback=fallback.runnable,
        policy=policy,
        scorer=MinLogprobScorer(),
    )
    decision = routing(gate.invoke(QUESTION))
    assert decision["scorer"] == "min_logprob" and decision["threshold"] == -1.0
    assert decision["policy_version"] == "cal-7"
    assert decision["reason"] == "low_confidence" and fallback.calls == 1


def test_threshold_as_a_configurable_field() -> None:
    fallback = cloud_tier()
    gate = gate_of(mixed_tier(), fallback, threshold=-1.0).configurable_fields(
        threshold=ConfigurableField(id="gate_threshold")
    )
    assert routing(gate.invoke("q"))["reason"] == "confident"  # mean -0.507 >= -1.0
    assert fallback.calls == 0
    strict = gate.with_config(configurable={"gate_threshold": -0.1})
    decision = routing(strict.invoke("q"))
    assert decision["threshold"] == -0.1 and decision["reason"] == "low_confidence"
    assert fallback.calls == 1


# --------------------------------------------------------------------------- dict outputs (RAG)

RAG_PROMPT = ChatPromptTemplate.from_messages(
    [("system", "Answer from the context."), ("human", "{question}")]
)


def retrieve(inputs: dict[str, Any]) -> list[Document]:
    return [Document(page_content=f"Notes about: {inputs['question']}")]


def rag(model: Runnable[Any, Any]) -> Runnable[Any, Any]:
    """A RAG-like chain: ``{"context": docs, "answer": AIMessage}``."""
    return RunnableParallel(context=RunnableLambda(retrieve), answer=RAG_PROMPT | model)


def test_rag_chain_confident_answer_gets_routing_key_and_metadata() -> None:
    fallback = cloud_tier()
    gate = gate_of(rag(fake_chat(answer("Paris", SURE))), fallback)
    out = gate.invoke({"question": QUESTION})

    assert set(out) == {"context", "answer", "routing"}
    assert out["context"] == [Document(page_content=f"Notes about: {QUESTION}")]
    assert out["answer"].content == "Paris"
    assert out["routing"]["tier"] == "local" and out["routing"]["reason"] == "confident"
    assert routing(out["answer"]) == out["routing"]  # same record on the message
    assert fallback.calls == 0


def test_rag_chain_unconfident_answer_falls_back_to_another_rag_chain() -> None:
    primary = rag(fake_chat(answer("Lyon", UNSURE)))
    fallback = rag(fake_chat(AIMessage("Paris, definitely")))
    out = gate_of(primary, fallback).invoke({"question": QUESTION})

    assert set(out) == {"context", "answer", "routing"}
    assert out["answer"].content == "Paris, definitely"
    assert out["routing"]["tier"] == "cloud" and out["routing"]["reason"] == "low_confidence"
    assert out["routing"]["confidence"] == pytest.approx(UNSURE)
    assert routing(out["answer"]) == out["routing"]


def two_messages(_: Any) -> dict[str, Any]:
    """A dict with an unconfident draft first and a confident final answer second."""
    return {"draft": answer("Lyon?", UNSURE), "answer": answer("Paris", SURE), "n": 2}


def test_dict_output_without_message_key_scores_the_first_message() -> None:
    fallback = Tier(lambda _: {"answer": AIMessage("Cloud Paris")})
    out = gate_of(Tier(two_messages), fallback).invoke(QUESTION)
    assert out["routing"]["reason"] == "low_confidence"
    assert out["routing"]["confidence"] == pytest.approx(UNSURE)
    assert out["answer"].content == "Cloud Paris"
    assert routing(out["answer"]) == out["routing"]
    assert fallback.calls == 1


def test_dict_output_with_message_key_scores_that_message() -> None:
    fallback = Tier(lambda _: {"answer": AIMessage("Cloud Paris")})
    out = gate_of(Tier(two_messages), fallback, message_key="answer").invoke(QUESTION)

    assert out["routing"]["tier"] == "local" and out["routing"]["reason"] == "confident"
    assert out["routing"]["confidence"] == pytest.approx(SURE)
    assert out["answer"].content == "Paris" and out["n"] == 2
    assert routing(out["answer"]) == out["routing"]
    assert "routing" not in out["draft"].response_metadata  # only the scored message
    assert fallback.calls == 0


def test_dict_output_message_key_that_is_missing_escalates() -> None:
    fallback = Tier(lambda _: {"result": AIMessage("Cloud Paris")})
    out = gate_of(Tier(two_messages), fallback, message_key="result").invoke(QUESTION)
    assert out["routing"]["tier"] == "cloud"
    assert out["routing"]["reason"] == "no_logprobs"  # no answer message to score
    assert routing(out["result"]) == out["routing"]


def test_dict_output_scores_the_ai_message_not_an_echoed_question() -> None:
    def echo(_: Any) -> dict[str, Any]:
        return {"question": HumanMessage(QUESTION), "answer": answer("Paris", SURE)}

    fallback = cloud_tier()
    out = gate_of(Tier(echo), fallback).invoke(QUESTION)
    assert out["routing"]["reason"] == "confident"
    assert routing(out["answer"]) == out["routing"]
    assert "routing" not in out["question"].response_metadata
    assert fallback.calls == 0
    found = find_message(echo(None))
    assert found is not None and found.content == "Paris"


def test_non_message_outputs_pass_through_unchanged() -> None:
    fallback = Tier(lambda _: "cloud text")
    out = gate_of(Tier(lambda _: "local text"), fallback).invoke(QUESTION)
    assert out == "cloud text"  # nothing to score: escalated, nothing to attach to
    assert fallback.calls == 1


# --------------------------------------------------------------------------- LCEL


PROMPT = ChatPromptTemplate.from_messages([("human", "Q: {question}")])


def test_composes_with_prompt_and_str_output_parser() -> None:
    primary, fallback = confident_tier("Paris"), cloud_tier()
    chain = PROMPT | gate_of(primary, fallback) | StrOutputParser()
    assert chain.invoke({"question": QUESTION}) == "Paris"
    [prompt_value] = primary.inputs
    assert isinstance(prompt_value, ChatPromptValue)
    assert prompt_value.messages[-1].content == f"Q: {QUESTION}"
    assert fallback.calls == 0

    primary, fallback = unsure_tier(), cloud_tier()
    chain = PROMPT | gate_of(primary, fallback) | StrOutputParser()
    assert chain.invoke({"question": QUESTION}) == CLOUD_TEXT
    assert fallback.inputs == primary.inputs  # the same formatted prompt
    assert isinstance(fallback.inputs[0], ChatPromptValue)


def test_chain_stream_through_str_output_parser() -> None:
    chain = PROMPT | gate_of(confident_tier("Paris"), cloud_tier()) | StrOutputParser()
    assert list(chain.stream({"question": QUESTION})) == ["Paris"]

    streaming = fake_chat(AIMessage(CLOUD_TEXT))
    chain = PROMPT | gate_of(unsure_tier(), streaming) | StrOutputParser()
    parts = list(chain.stream({"question": QUESTION}))
    assert len([p for p in parts if p]) > 1  # token by token
    assert "".join(parts) == CLOUD_TEXT


def test_batch_mixed_outcomes_preserve_order() -> None:
    sure = {"q1", "q3"}
    primary = Tier(lambda q: answer(f"local {q}", SURE if q in sure else UNSURE))
    fallback = Tier(lambda q: AIMessage(f"cloud {q}"))
    questions = ["q0", "q1", "q2", "q3", "q4"]
    outs = gate_of(primary, fallback).batch(questions, config={"max_concurrency": 2})

    assert [o.content for o in outs] == ["cloud q0", "local q1", "cloud q2", "local q3", "cloud q4"]
    assert [routing(o)["tier"] for o in outs] == ["cloud", "local", "cloud", "local", "cloud"]
    assert sorted(primary.inputs) == questions
    assert sorted(fallback.inputs) == ["q0", "q2", "q4"]


def test_batch_return_exceptions_keeps_failing_inputs_in_place() -> None:
    def reply(q: str) -> AIMessage:
        if q.startswith("bad"):
            raise ValueError("local model crashed")
        return answer(f"local {q}", SURE)

    def cloud(q: str) -> AIMessage:
        if q == "bad and no cloud":
            raise RuntimeError("cloud down")
        return AIMessage(f"cloud {q}")

    inputs = ["a", "bad", "b", "bad and no cloud"]
    outs = gate_of(Tier(reply), Tier(cloud)).batch(inputs, return_exceptions=True)
    assert [o.content for o in outs[:3]] == ["local a", "cloud bad", "local b"]
    assert routing(outs[1])["reason"] == "local_error"
    assert isinstance(outs[3], BothTiersFailedError) and "crashed" in str(outs[3])


# --------------------------------------------------------------------------- stream


def test_stream_confident_yields_one_chunk_with_routing() -> None:
    fallback = cloud_tier()
    chunks = list(gate_of(confident_tier("Paris"), fallback).stream(QUESTION))
    assert len(chunks) == 1
    assert chunks[0].content == "Paris"
    assert routing(chunks[0])["tier"] == "local"
    assert fallback.calls == 0


def test_stream_unconfident_streams_the_fallback_chunk_by_chunk() -> None:
    recorder = Recorder()
    gate = gate_of(unsure_tier(), fake_chat(AIMessage(CLOUD_TEXT)))
    chunks = list(gate.stream(QUESTION, {"callbacks": [recorder]}))

    assert len(chunks) > 2
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    merged = merge(chunks)
    assert merged.content == CLOUD_TEXT
    decision = merged.response_metadata["routing"]  # the stream also carries the decision
    assert decision["tier"] == "cloud" and decision["reason"] == "low_confidence"
    [(event, run_id)] = recorder.route_events()
    assert event == decision and run_id == recorder.one("ConfidenceGate").run_id


def test_stream_fallback_failure_yields_the_degraded_primary() -> None:
    gate = gate_of(unsure_tier("Maybe Lyon"), Tier(failing("cloud down")))
    chunks = list(gate.stream(QUESTION))
    assert len(chunks) == 1
    assert chunks[0].content == "Maybe Lyon"
    decision = routing(chunks[0])
    assert decision["degraded"] is True and decision["tier"] == "local"
    assert "cloud down" in decision["error"]


def test_stream_whole_message_fallback_is_passed_through() -> None:
    recorder = Recorder()
    chunks = list(gate_of(unsure_tier(), cloud_tier()).stream("q", {"callbacks": [recorder]}))
    assert [c.content for c in chunks] == [CLOUD_TEXT]  # a non-streaming runnable: one chunk
    [(data, _)] = recorder.route_events()  # the decision still reaches the callbacks
    assert data["tier"] == "cloud"


def test_stream_rag_fallback_carries_routing_key() -> None:
    primary = rag(fake_chat(answer("Lyon", UNSURE)))
    fallback = rag(fake_chat(AIMessage("Paris, definitely")))
    chunks = list(gate_of(primary, fallback).stream({"question": QUESTION}))
    assert len(chunks) > 2
    merged = merge(chunks)
    assert merged["answer"].content == "Paris, definitely"
    assert merged["routing"]["tier"] == "cloud"
    assert merged["answer"].response_metadata["routing"] == merged["routing"]


# --------------------------------------------------------------------------- fallback failure


def test_fallback_failure_degrades_to_the_primary_output() -> None:
    primary, fallback = unsure_tier("Maybe Lyon"), Tier(failing("cloud down"))
    out = gate_of(primary, fallback).invoke(QUESTION)

    assert out.content == "Maybe Lyon"
    assert out.response_metadata["logprobs"]["content"][0]["logprob"] == UNSURE
    decision = routing(out)
    assert decision["degraded"] is True and decision["escalated"] is True
    assert decision["tier"] == "local" and decision["reason"] == "cloud_error"
    assert decision["escalation_reason"] == "low_confidence"
    assert decision["error"] == "cloud: RuntimeError: cloud down"
    assert decision["cost_usd"] == 0.0
    assert fallback.calls == 1


def test_fallback_failure_with_rag_output_degrades_to_primary_dict() -> None:
    primary = rag(fake_chat(answer("Lyon", UNSURE)))
    out = gate_of(primary, Tier(failing("cloud down"))).invoke({"question": QUESTION})
    assert out["answer"].content == "Lyon"
    assert (
        out["routing"]["degraded"] is True
        and out["routing"]["error"] == "cloud: RuntimeError: cloud down"
    )
    assert routing(out["answer"]) == out["routing"]


def test_primary_failure_goes_to_the_fallback() -> None:
    fallback = cloud_tier()
    out = gate_of(Tier(failing("local crashed", ValueError)), fallback).invoke(QUESTION)
    decision = routing(out)
    assert out.content == CLOUD_TEXT and fallback.calls == 1
    assert (decision["tier"], decision["reason"]) == ("cloud", "local_error")
    assert decision["error"] == "local: ValueError: local crashed"
    assert decision["confidence"] is None


def test_both_failing_raise_one_error_naming_both() -> None:
    gate = gate_of(Tier(failing("local crashed", ValueError)), Tier(failing("cloud down")))
    with pytest.raises(BothTiersFailedError, match="local crashed.*cloud down") as info:
        gate.invoke(QUESTION)
    assert isinstance(info.value.local_error, ValueError)


# --------------------------------------------------------------------------- HTTP fallback


def test_http_fallback_invoke_is_priced(openai_mock: MockOpenAI) -> None:
    openai_mock.enqueue(ScriptedReply(CLOUD_TEXT))
    primary = unsure_tier()
    out = gate_of(primary, make_chat_openai(openai_mock)).invoke(QUESTION)

    assert out.content == CLOUD_TEXT
    decision = routing(out)
    assert decision["tier"] == "cloud" and decision["degraded"] is False
    [request] = openai_mock.chat_requests
    assert request["messages"][-1]["content"] == QUESTION
    usage = out.usage_metadata
    assert usage is not None and usage["output_tokens"] > 0
    price = PriceTable.default().lookup("gpt-4o")
    assert price is not None
    expected = price.cost(usage["input_tokens"], usage["output_tokens"])
    assert expected > 0 and decision["cost_usd"] == pytest.approx(expected)
    assert openai_mock.errors == []


def test_http_fallback_not_called_when_confident(openai_mock: MockOpenAI) -> None:
    out = gate_of(confident_tier(), make_chat_openai(openai_mock)).invoke(QUESTION)
    assert routing(out)["tier"] == "local"
    assert openai_mock.chat_requests == []


def test_http_fallback_streams_token_by_token(openai_mock: MockOpenAI) -> None:
    tokens = ["The", " capital", " is", " Paris", "."]
    openai_mock.enqueue(ScriptedReply("".join(tokens), tokens=tokens))
    gate = gate_of(unsure_tier(), make_chat_openai(openai_mock))
    chunks = list(gate.stream(QUESTION))

    assert [c.content for c in chunks if c.content] == tokens
    merged = merge(chunks)
    assert merged.content == "".join(tokens)
    assert merged.response_metadata["routing"]["tier"] == "cloud"
    [request] = openai_mock.chat_requests
    assert request.get("stream") is True
    assert openai_mock.errors == []


def test_http_500_degrades_to_the_primary_answer(openai_mock: MockOpenAI) -> None:
    openai_mock.enqueue(Fault(status=500))
    out = gate_of(unsure_tier("Maybe Lyon"), make_chat_openai(openai_mock)).invoke(QUESTION)

    assert out.content == "Maybe Lyon"
    decision = routing(out)
    assert decision["degraded"] is True and decision["tier"] == "local"
    assert "500" in decision["error"]
    assert len(openai_mock.chat_requests) == 1  # max_retries=0: one attempt


def test_http_500_while_streaming_degrades(openai_mock: MockOpenAI) -> None:
    openai_mock.enqueue(Fault(status=500))
    chunks = list(gate_of(unsure_tier("Maybe Lyon"), make_chat_openai(openai_mock)).stream("q"))
    assert [c.content for c in chunks] == ["Maybe Lyon"]
    assert routing(chunks[0])["degraded"] is True


async def test_http_fallback_astream(openai_mock: MockOpenAI) -> None:
    tokens = ["Paris", " it", " is", "."]
    openai_mock.enqueue(ScriptedReply("".join(tokens), tokens=tokens))
    gate = gate_of(unsure_tier(), make_chat_openai(openai_mock))
    chunks = [c async for c in gate.astream(QUESTION)]
    assert [c.content for c in chunks if c.content] == tokens
    assert merge(chunks).response_metadata["routing"]["reason"] == "low_confidence"


async def test_http_500_degrades_async(openai_mock: MockOpenAI) -> None:
    openai_mock.enqueue(Fault(status=500))
    out = await gate_of(unsure_tier("Maybe Lyon"), make_chat_openai(openai_mock)).ainvoke("q")
    assert out.content == "Maybe Lyon"
    assert routing(out)["degraded"] is True and "500" in routing(out)["error"]


# --------------------------------------------------------------------------- async twins


async def test_ainvoke_confident_and_unconfident() -> None:
    primary, fallback = confident_tier("Paris"), cloud_tier()
    out = await gate_of(primary, fallback).ainvoke(QUESTION)
    assert out.content == "Paris" and routing(out)["reason"] == "confident"
    assert fallback.calls == 0

    primary, fallback = unsure_tier(), cloud_tier()
    out = await gate_of(primary, fallback).ainvoke(QUESTION)
    assert out.content == CLOUD_TEXT and routing(out)["reason"] == "low_confidence"
    assert fallback.inputs == [QUESTION]


async def test_ainvoke_hedge_no_logprobs_and_degraded() -> None:
    out = await gate_of(Tier(lambda _: answer("I don't know", SURE)), cloud_tier()).ainvoke("q")
    assert routing(out)["reason"] == "hedge" and out.content == CLOUD_TEXT

    out = await gate_of(fake_chat(AIMessage("Paris")), cloud_tier()).ainvoke("q")
    assert routing(out)["reason"] == "no_logprobs" and out.content == CLOUD_TEXT

    out = await gate_of(unsure_tier("Lyon"), Tier(failing("cloud down"))).ainvoke("q")
    assert out.content == "Lyon"
    assert (
        routing(out)["degraded"] is True
        and routing(out)["error"] == "cloud: RuntimeError: cloud down"
    )


async def test_ainvoke_rag_with_message_key() -> None:
    out = await gate_of(Tier(two_messages), cloud_tier(), message_key="answer").ainvoke("q")
    assert out["routing"]["reason"] == "confident"
    assert routing(out["answer"]) == out["routing"]


async def test_abatch_mixed_outcomes_preserve_order() -> None:
    primary = Tier(lambda q: answer(f"local {q}", SURE if q.endswith("!") else UNSURE))
    fallback = Tier(lambda q: AIMessage(f"cloud {q}"))
    outs = await gate_of(primary, fallback).abatch(["a!", "b", "c!", "d"])
    assert [o.content for o in outs] == ["local a!", "cloud b", "local c!", "cloud d"]
    assert [routing(o)["escalated"] for o in outs] == [False, True, False, True]
    assert sorted(fallback.inputs) == ["b", "d"]


async def test_astream_confident_one_chunk_and_unconfident_streams() -> None:
    fallback = cloud_tier()
    chunks = [c async for c in gate_of(confident_tier("Paris"), fallback).astream("q")]
    assert len(chunks) == 1 and routing(chunks[0])["tier"] == "local"
    assert fallback.calls == 0

    gate = gate_of(unsure_tier(), fake_chat(AIMessage(CLOUD_TEXT)))
    chunks = [c async for c in gate.astream("q")]
    assert len(chunks) > 2
    merged = merge(chunks)
    assert merged.content == CLOUD_TEXT
    assert merged.response_metadata["routing"]["tier"] == "cloud"


async def test_astream_fallback_failure_degrades() -> None:
    gate = gate_of(unsure_tier("Lyon"), Tier(failing("cloud down")))
    chunks = [c async for c in gate.astream("q")]
    assert [c.content for c in chunks] == ["Lyon"]
    assert routing(chunks[0])["degraded"] is True


async def test_async_chain_with_str_output_parser() -> None:
    chain = PROMPT | gate_of(unsure_tier(), fake_chat(AIMessage(CLOUD_TEXT))) | StrOutputParser()
    parts = [p async for p in chain.astream({"question": QUESTION})]
    assert len([p for p in parts if p]) > 1 and "".join(parts) == CLOUD_TEXT


# --------------------------------------------------------------------------- callbacks


def invoke_recorded(gate: ConfidenceGate, value: Any) -> tuple[Any, Recorder]:
    recorder = Recorder()
    out = gate.invoke(value, {"callbacks": [recorder]})
    return out, recorder


def test_hybrid_route_event_once_with_gate_run_id() -> None:
    out, recorder = invoke_recorded(gate_of(unsure_tier(), cloud_tier()), QUESTION)
    gate_run = recorder.one("ConfidenceGate")
    assert gate_run.parent_run_id is None
    [(data, run_id)] = recorder.route_events()
    assert run_id == gate_run.run_id
    assert data == routing(out)
    assert len(recorder.events) == 1

    out, recorder = invoke_recorded(gate_of(confident_tier(), cloud_tier()), QUESTION)
    [(data, run_id)] = recorder.route_events()
    assert run_id == recorder.one("ConfidenceGate").run_id
    assert data["tier"] == "local" and data == routing(out)


def test_child_runs_named_primary_and_fallback_under_the_gate() -> None:
    out, recorder = invoke_recorded(gate_of(unsure_tier(), cloud_tier()), QUESTION)
    gate_run = recorder.one("ConfidenceGate")
    assert recorder.one("primary").parent_run_id == gate_run.run_id
    assert recorder.one("fallback").parent_run_id == gate_run.run_id

    _, recorder = invoke_recorded(gate_of(confident_tier(), cloud_tier()), QUESTION)
    assert recorder.one("primary").parent_run_id == recorder.one("ConfidenceGate").run_id
    assert recorder.named("fallback") == []


def test_chat_model_child_runs_and_custom_run_name() -> None:
    gate = gate_of(fake_chat(answer("Lyon", UNSURE)), fake_chat(AIMessage("Paris")))
    recorder = Recorder()
    gate.invoke(QUESTION, {"callbacks": [recorder], "run_name": "my_gate"})
    gate_run = recorder.one("my_gate")
    primary, fallback = recorder.one("primary"), recorder.one("fallback")
    assert (primary.kind, fallback.kind) == ("chat_model", "chat_model")
    assert primary.parent_run_id == fallback.parent_run_id == gate_run.run_id
    [(_, run_id)] = recorder.route_events()
    assert run_id == gate_run.run_id


def test_event_and_child_runs_inside_a_chain() -> None:
    chain = PROMPT | gate_of(unsure_tier(), cloud_tier()) | StrOutputParser()
    recorder = Recorder()
    assert chain.invoke({"question": QUESTION}, {"callbacks": [recorder]}) == CLOUD_TEXT
    sequence, gate_run = recorder.one("RunnableSequence"), recorder.one("ConfidenceGate")
    assert gate_run.parent_run_id == sequence.run_id
    assert recorder.one("fallback").parent_run_id == gate_run.run_id
    [(data, run_id)] = recorder.route_events()
    assert run_id == gate_run.run_id and data["tier"] == "cloud"


def test_batch_sends_one_event_per_input() -> None:
    recorder = Recorder()
    primary = Tier(lambda q: answer(q, SURE if q == "sure" else UNSURE))
    gate = gate_of(primary, cloud_tier())
    gate.batch(["sure", "unsure", "sure"], {"callbacks": [recorder]})
    gate_runs = {r.run_id for r in recorder.named("ConfidenceGate")}
    events = recorder.route_events()
    assert len(gate_runs) == 3 and {run_id for _, run_id in events} == gate_runs
    assert sorted(data["tier"] for data, _ in events) == ["cloud", "local", "local"]


def test_stream_child_runs_and_single_event() -> None:
    recorder = Recorder()
    gate = gate_of(unsure_tier(), fake_chat(AIMessage(CLOUD_TEXT)))
    list(gate.stream(QUESTION, {"callbacks": [recorder]}))
    gate_run = recorder.one("ConfidenceGate")
    assert recorder.one("primary").parent_run_id == gate_run.run_id
    assert recorder.one("fallback").parent_run_id == gate_run.run_id
    assert [run_id for _, run_id in recorder.route_events()] == [gate_run.run_id]


async def test_async_event_once_and_child_runs() -> None:
    recorder = Recorder()
    gate = gate_of(unsure_tier(), cloud_tier())
    out = await gate.ainvoke(QUESTION, {"callbacks": [recorder]})
    gate_run = recorder.one("ConfidenceGate")
    [(data, run_id)] = recorder.route_events()
    assert run_id == gate_run.run_id and data == routing(out)
    assert recorder.one("primary").parent_run_id == gate_run.run_id
    assert recorder.one("fallback").parent_run_id == gate_run.run_id

    recorder = Recorder()
    [c async for c in gate.astream(QUESTION, {"callbacks": [recorder]})]
    gate_run = recorder.one("ConfidenceGate")
    assert [run_id for _, run_id in recorder.route_events()] == [gate_run.run_id]
    assert recorder.one("fallback").parent_run_id == gate_run.run_id


@pytest.mark.parametrize("confident", [True, False])
async def test_astream_events_v2_shows_the_decision(confident: bool) -> None:
    primary = confident_tier() if confident else unsure_tier()
    gate = gate_of(primary, fake_chat(AIMessage(CLOUD_TEXT)))
    chain = PROMPT | gate | StrOutputParser()
    events = [e async for e in chain.astream_events({"question": QUESTION}, version="v2")]

    [gate_start] = [
        e for e in events if e["event"] == "on_chain_start" and e["name"] == "ConfidenceGate"
    ]
    gate_id = gate_start["run_id"]
    routes = [e for e in events if e["event"] == "on_custom_event" and e["name"] == "hybrid_route"]
    assert len(routes) == 1
    assert routes[0]["run_id"] == gate_id
    data: dict[str, Any] = dict(routes[0]["data"])
    assert data["tier"] == ("local" if confident else "cloud")
    assert data["reason"] == ("confident" if confident else "low_confidence")

    starts = {e["name"]: e for e in events if e["event"].endswith("_start")}
    assert starts["primary"]["parent_ids"][-1] == gate_id
    if confident:
        assert "fallback" not in starts
    else:
        assert starts["fallback"]["event"] == "on_chat_model_start"
        assert starts["fallback"]["parent_ids"][-1] == gate_id
        tokens = [
            e["data"]["chunk"].content
            for e in events
            if e["event"] == "on_chat_model_stream" and e["name"] == "fallback"
        ]
        assert len([t for t in tokens if t]) > 1 and "".join(tokens) == CLOUD_TEXT

    [end] = [e for e in events if e["event"] == "on_chain_end" and e["run_id"] == gate_id]
    assert end["data"]["output"].response_metadata["routing"] == data
    final = [e for e in events if e["event"] == "on_chain_end" and not e["parent_ids"]]
    assert final[-1]["data"]["output"] == ("Paris" if confident else CLOUD_TEXT)


def test_decision_is_the_same_record_on_every_surface() -> None:
    """Metadata, event and confidence features come from one RouteDecision."""
    out, recorder = invoke_recorded(gate_of(mixed_tier(), cloud_tier(), threshold=-1.0), "q")
    [(data, _)] = recorder.route_events()
    decision = routing(out)
    assert data == decision
    assert decision["features"]["min_logprob"] == pytest.approx(-1.5)
    assert decision["features"]["mean_logprob"] == pytest.approx(sum(MIXED) / 3)
    assert math.isclose(decision["confidence"], decision["features"]["mean_logprob"])


def test_config_is_passed_to_the_tiers() -> None:
    seen: list[RunnableConfig] = []

    def primary(value: Any, config: RunnableConfig) -> AIMessage:
        seen.append(config)
        return answer("Paris", SURE)

    gate = gate_of(RunnableLambda(primary), cloud_tier())
    gate.invoke("q", {"tags": ["t1"], "metadata": {"user": "u1"}})
    [config] = seen
    assert "t1" in config.get("tags", [])
    assert config.get("metadata", {}).get("user") == "u1"
