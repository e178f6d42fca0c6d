"""Knowing when the local answer is right: grouped validation, the hidden-state probe, the
gate before generation, and the live route agreeing with ``policy.judge`` on them.

The local tier is a scripted model that reports hidden states as ``ChatTransformers``
does (the prompt's state on the first streamed chunk, the answer's mean on the last);
the cloud is the real ``ChatOpenAI`` answered by the socket-free ``MockOpenAI``.
"""

from __future__ import annotations

import json
import random
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field

from langchain_hybrid import ChatHybrid, EarlyEscalation, RoutingPolicy
from langchain_hybrid.calibration import CloudOutcomes, calibrate
from langchain_hybrid.calibration.features import _prepare
from langchain_hybrid.calibration.fit import _folds
from langchain_hybrid.costs import PriceTable
from langchain_hybrid.evaluation.records import LocalRecord
from langchain_hybrid.hidden_states import encode_vector
from langchain_hybrid.routing.scorers import ProbeScorer
from langchain_hybrid.routing.state_gate import StateGate
from tests.support.fake_chat import FakeLocalChatModel
from tests.support.fixtures import make_chat_openai
from tests.support.openai_mock import MockOpenAI

DIM = 8
RIGHT = np.array([1.0, -1.0, 0.5, 0.0, 0.0, 0.25, -0.5, 1.0])  # the "knows it" direction


def _state(right: bool, rng: random.Random) -> list[float]:
    sign = 1.0 if right else -1.0
    return [round(sign * w + rng.gauss(0, 0.6), 3) for w in RIGHT]


def _hidden(prompt: list[float], answer: list[float]) -> dict[str, Any]:
    return {
        "layer": 3,
        "dim": DIM,
        "prompt": encode_vector(prompt),
        "answer_mean": encode_vector(answer),
    }


def _record(i: int, group: int, right: bool, rng: random.Random) -> LocalRecord:
    # Log-probs that say nothing about correctness; hidden states that do.
    lp = rng.uniform(-1.5, -0.1)
    answer = AIMessage(
        "Paris",
        response_metadata={
            "finish_reason": "stop",
            "model_name": "fake-local",
            "logprobs": {"content": [{"token": "Paris", "logprob": lp}]},
            "hidden_state": _hidden(_state(right, rng), _state(right, rng)),
        },
    )
    prompt = (HumanMessage(f"Question {i} about article {group}?"),)
    return LocalRecord(str(i), prompt, answer, right, 0.1, 16, group=f"title:{group}")


def _records(n_groups: int = 24, per_group: int = 15, seed: int = 0) -> list[LocalRecord]:
    rng = random.Random(seed)
    out = []
    for g in range(n_groups):
        for j in range(per_group):
            out.append(_record(g * per_group + j, g, rng.random() < 0.5, rng))
    return out


# --------------------------------------------------------------------------- grouped folds


def test_folds_hold_out_whole_groups() -> None:
    records = _records()
    data = _prepare(records, CloudOutcomes.assumed(0.9), PriceTable.default())
    splits, how = _folds(data, 5, 0)
    assert how == "5-fold cross-validation by group (24 groups)"
    for train, test in splits:
        assert not set(data.groups[train].tolist()) & set(data.groups[test].tolist())
    # One group: nothing can be held out, and calibration says so.
    one = [LocalRecord(r.example_id, r.prompt, r.answer, r.correct, 0.1, 16, group="g")
           for r in records[:40]]  # fmt: skip
    result = calibrate(one, target_cloud_rate=0.5, cloud=CloudOutcomes.assumed(0.9))
    assert result.achieved["how"].startswith("in-sample (one group")
    assert "no learned scorer: only 1 group(s)" in result.report()


# --------------------------------------------------------------------------- the probe


def test_calibrate_fits_a_probe_that_beats_the_log_probs_on_unseen_groups(tmp_path: Path) -> None:
    records = _records()
    result = calibrate(
        records, target_accuracy=0.85, cloud=CloudOutcomes.assumed(0.9), fit_early=False
    )
    assert result.met, result.message
    assert result.auroc["probe"] is not None and result.auroc["mean_logprob"] is not None
    assert result.auroc["probe"] > result.auroc["mean_logprob"] + 0.3
    low, high = result.auroc_ci["probe"]  # type: ignore[misc]
    assert low <= result.auroc["probe"] <= high
    policy = result.policy
    assert isinstance(policy.scorer, ProbeScorer) and policy.scorer.layer == 3
    assert policy.fitted_on is not None and policy.fitted_on["model"] == "fake-local"
    # Saved without pickle: plain numbers in JSON, and the same policy back.
    path = tmp_path / "policy.json"
    policy.save(path)
    assert json.loads(path.read_text())["scorer"]["name"] == "probe"
    assert RoutingPolicy.load(path) == policy


def test_the_probe_scores_live_as_calibration_scored_it() -> None:
    from langchain_hybrid.calibration.probe import fit_probe, probe_scores

    data = _prepare(_records(), CloudOutcomes.assumed(0.9), PriceTable.default())
    probe = fit_probe(data)
    offline = probe_scores(probe, data)
    policy = RoutingPolicy(scorer=probe, threshold=0.0, early_escalation=_OFF)
    for record, expected in list(zip(data.records, offline, strict=True))[:20]:
        verdict = policy.judge(record.answer, max_tokens=16, context=list(record.prompt))
        assert verdict.confidence.score == pytest.approx(expected, abs=1e-6)


# --------------------------------------------------------------------------- live route


class HiddenLocal(FakeLocalChatModel):
    """Answers with hidden states, as ChatTransformers(hidden_states=True) reports them."""

    hidden_states: bool = False
    states: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """The hidden state of each question's answer, by the question's text."""

    def _state_of(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> dict[str, Any]:
        if not (kwargs.get("hidden_states") or self.hidden_states):
            return {}
        return self.states[str(messages[-1].text)]

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        result = super()._generate(messages, stop, run_manager, **kwargs)
        message = result.generations[0].message
        state = self._state_of(messages, kwargs)
        if state:
            metadata = {**message.response_metadata, "hidden_state": state}
            message = message.model_copy(update={"response_metadata": metadata})
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        state = self._state_of(messages, kwargs)
        if state:  # the prompt's state first, before any token
            first = {k: v for k, v in state.items() if k != "answer_mean"}
            yield ChatGenerationChunk(
                message=AIMessageChunk(content="", response_metadata={"hidden_state": first})
            )
        for chunk in super()._stream(messages, stop, run_manager, **kwargs):
            if state and chunk.message.chunk_position == "last":
                metadata = {
                    **chunk.message.response_metadata,
                    "hidden_state": {"answer_mean": state["answer_mean"]},
                }
                chunk = ChatGenerationChunk(
                    message=chunk.message.model_copy(update={"response_metadata": metadata})
                )
            yield chunk


_OFF = EarlyEscalation(enabled=False)
MODES = ["invoke", "stream", "ainvoke", "astream"]


async def _answer(llm: ChatHybrid, mode: str, question: str) -> BaseMessage:
    if mode == "invoke":
        return llm.invoke(question)
    if mode == "ainvoke":
        return await llm.ainvoke(question)
    chunks = (
        list(llm.stream(question)) if mode == "stream" else [c async for c in llm.astream(question)]
    )
    total = chunks[0]
    for c in chunks[1:]:
        total = total + c
    return total


def _hybrid(openai_mock: MockOpenAI, policy: RoutingPolicy) -> tuple[ChatHybrid, HiddenLocal]:
    rng = random.Random(1)
    states = {
        "known?": _hidden(_state(True, rng), _state(True, rng)),
        "unknown?": _hidden(_state(False, rng), _state(False, rng)),
    }
    local = HiddenLocal(messages=iter(["Paris"] * 100), logprob=-0.3, states=states)
    return ChatHybrid(local=local, cloud=make_chat_openai(openai_mock), policy=policy), local


_PROBE = ProbeScorer(hidden={"prompt": list(RIGHT), "answer_mean": list(RIGHT)}, intercept=0.0)


@pytest.mark.parametrize("mode", MODES)
async def test_live_route_and_judge_agree_on_the_probe(openai_mock: MockOpenAI, mode: str) -> None:
    policy = RoutingPolicy(scorer=_PROBE, threshold=0.0, privacy=None)
    llm, local = _hybrid(openai_mock, policy)
    for question, tier in (("known?", "local"), ("unknown?", "cloud")):
        msg = await _answer(llm, mode, question)
        routing = msg.response_metadata["routing"]
        assert routing["tier"] == tier, routing
        # ChatHybrid asked the local tier for its hidden states (the policy reads them).
        assert local.seen[-1]["hidden_states"] is True
        replay = policy.judge(local.invoke(question, hidden_states=True), max_tokens=None)
        assert (replay.tier, replay.reason) == (routing["tier"], routing["escalation_reason"]
                                                or routing["reason"])  # fmt: skip
        assert replay.confidence.score == pytest.approx(routing["confidence"])


@pytest.mark.parametrize("mode", MODES)
async def test_the_gate_sends_a_hopeless_prompt_to_the_cloud_before_generation(
    openai_mock: MockOpenAI, mode: str
) -> None:
    gate = StateGate({"prompt": list(RIGHT)}, intercept=0.0, threshold=-0.5, layer=3)
    policy = RoutingPolicy(threshold=-2.0, privacy=None, before_generation=gate)
    llm, local = _hybrid(openai_mock, policy)
    msg = await _answer(llm, mode, "unknown?")
    routing = msg.response_metadata["routing"]
    assert (routing["tier"], routing["reason"]) == ("cloud", "predicted_unlikely")
    assert routing["early_abort"] and routing["local_output_tokens"] == 0
    assert routing["confidence"] < -0.5 == routing["threshold"]
    replay = policy.judge(local.invoke("unknown?", hidden_states=True))
    assert (replay.reason, replay.n_tokens) == ("predicted_unlikely", 0)
    # A prompt the gate expects the model to know goes on to the local answer.
    kept = (await _answer(llm, mode, "known?")).response_metadata["routing"]
    assert (kept["tier"], kept["reason"]) == ("local", "confident")


@pytest.mark.parametrize("mode", MODES)
async def test_a_learned_early_probe_stops_a_failing_answer_a_few_tokens_in(
    openai_mock: MockOpenAI, mode: str
) -> None:
    states = {"prompt": list(RIGHT), "answer_prefix": list(RIGHT)}
    probe = StateGate(states, intercept=0.0, threshold=-0.5, after_tokens=2, layer=3)
    early = EarlyEscalation(probe=probe)
    policy = RoutingPolicy(threshold=-2.0, privacy=None, early_escalation=early)
    rng = random.Random(2)
    hidden = {
        q: {**_hidden(_state(k, rng), _state(k, rng)), "answer_prefix": encode_vector(
            _state(k, rng))}
        for q, k in (("known?", True), ("unknown?", False))
    }  # fmt: skip
    local = HiddenLocal(messages=iter(["It is in the north of France."] * 100), states=hidden)
    llm = ChatHybrid(local=local, cloud=make_chat_openai(openai_mock), policy=policy)
    routing = (await _answer(llm, mode, "unknown?")).response_metadata["routing"]
    assert (routing["tier"], routing["reason"]) == ("cloud", "early_abort")
    assert routing["local_output_tokens"] == 2 and local.seen[-1]["hidden_states"] is True
    replay = policy.judge(local.invoke("unknown?", hidden_states=True))
    assert (replay.reason, replay.n_tokens) == ("early_abort", 2)
    kept = (await _answer(llm, mode, "known?")).response_metadata["routing"]
    assert (kept["tier"], kept["reason"]) == ("local", "confident")


def _long_record(i: int, group: int, right: bool, rng: random.Random) -> LocalRecord:
    # Eight tokens whose log-probs say nothing, nor does the prompt's state (a gate before
    # generation has nothing to go on); the states a few tokens in and over the answer do.
    tokens = [{"token": f" w{k}", "logprob": rng.uniform(-1.5, -0.1)} for k in range(8)]
    state = {
        **_hidden(_state(rng.random() < 0.5, rng), _state(right, rng)),
        "answer_prefix": encode_vector(_state(right, rng)),
    }
    answer = AIMessage(
        "".join(str(t["token"]) for t in tokens),
        response_metadata={
            "finish_reason": "stop",
            "model_name": "fake-local",
            "logprobs": {"content": tokens},
            "hidden_state": state,
        },
    )
    prompt = (HumanMessage(f"Question {i} about article {group}?"),)
    return LocalRecord(str(i), prompt, answer, right, 0.1, 16, group=f"title:{group}")


def test_calibrate_chooses_the_learned_early_probe_when_it_saves_tokens_on_unseen_groups() -> None:
    rng = random.Random(3)
    records = [
        _long_record(g * 15 + j, g, rng.random() < 0.5, rng) for g in range(24) for j in range(15)
    ]
    result = calibrate(records, target_accuracy=0.85, cloud=CloudOutcomes.assumed(0.9))
    assert result.met, result.message
    early = result.early
    assert early["way"] == "probe" and early["after_tokens"] == 4, early
    compared = early["compared"]
    assert compared["probe"]["token_fraction"] < compared["fixed"]["token_fraction"]
    assert early["wrong_stop_rate"] <= 0.05
    probe = result.policy.early_escalation.probe
    assert probe is not None and set(probe.weights) == {"prompt", "answer_prefix"}
    assert "early escalation, a learned probe 4 tokens in" in result.report()
    # The policy replays the stops that calibration measured.
    stopped = [result.policy.judge(r.answer, max_tokens=16) for r in records[:60]]
    assert any(v.reason == "early_abort" and v.n_tokens == 4 for v in stopped)


def test_the_gate_and_probe_survive_a_policy_file(tmp_path: Path) -> None:
    gate = StateGate({"prompt": [0.5, -0.25]}, intercept=0.1, threshold=-1.0, layer=3)
    early = StateGate({"answer_prefix": [1.0, 0.0]}, 0.0, -2.0, after_tokens=4, layer=3)
    policy = RoutingPolicy(
        scorer=_PROBE, before_generation=gate, early_escalation=EarlyEscalation(probe=early)
    )
    path = tmp_path / "p.json"
    policy.save(path)
    assert RoutingPolicy.load(path) == policy
    bad = json.loads(path.read_text())
    bad["before_generation"]["weights"] = {"prompt": "not a list"}
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="before_generation"):
        RoutingPolicy.load(path)
    bad = json.loads(path.read_text())
    bad["before_generation"]["weights"] = {"prompt": [0.5]}
    bad["early_escalation"]["probe"]["after_tokens"] = -1
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="after_tokens must be an int >= 0"):
        RoutingPolicy.load(path)


def test_an_answer_without_hidden_states_cannot_be_probed() -> None:
    verdict = RoutingPolicy(scorer=_PROBE).judge(
        AIMessage(
            "Paris",
            response_metadata={"logprobs": {"content": [{"token": "Paris", "logprob": -0.1}]}},
        )  # fmt: skip
    )
    assert verdict.reason == "no_logprobs"


def test_a_policy_calibrated_on_another_model_warns(openai_mock: MockOpenAI) -> None:
    policy = RoutingPolicy(fitted_on={"model": "SmolLM2-135M-Instruct+squad@abcd1234"})
    with pytest.warns(UserWarning, match="calibrated on the local model"):
        ChatHybrid(local=FakeLocalChatModel(), cloud=make_chat_openai(openai_mock), policy=policy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted = RoutingPolicy(fitted_on={"model": "fake-local"})
        ChatHybrid(local=FakeLocalChatModel(), cloud=make_chat_openai(openai_mock), policy=fitted)
