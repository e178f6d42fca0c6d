"""export_escalations with the real langsmith client against the LangSmith capture server.

A ChatHybrid (a scripted local tier, the cloud on the loopback fake OpenAI server) is
traced to the capture server; ``export_escalations`` then lists the project's runs with
``Client.list_runs`` (``GET /sessions``, ``POST /runs/query``) and writes the escalated
requests only, in the recorder's row shape.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import langsmith
import pytest

from langchain_hybrid import ChatHybrid, PrivacyRule
from langchain_hybrid.evaluation import load_dataset
from langchain_hybrid.tuning import export_escalations
from langchain_hybrid.tuning.langsmith_export import ESCALATION_FILTER
from tests.support.fake_chat import FakeLocalChatModel
from tests.support.fixtures import flush_traces, make_chat_openai
from tests.support.langsmith_capture import LangSmithCaptureServer
from tests.support.openai_server import FakeOpenAIServer, ScriptedReply

SURE, UNSURE = -0.05, -2.5


def local(*answers: str) -> FakeLocalChatModel:
    """A local tier that is sure of answers starting 'Sure' and unsure of the others."""

    class Local(FakeLocalChatModel):
        def _answer(self, messages: Any, kwargs: dict[str, Any]) -> tuple[str, float]:
            text = str(next(self.messages))
            return text, SURE if text.startswith("Sure") else UNSURE

    return Local(messages=iter(answers))


def routing_metadata(run: dict[str, Any]) -> dict[str, Any]:
    return dict((run.get("extra") or {}).get("metadata") or {})


def routed_runs_ended(count: int) -> Any:
    """Wait for ``count`` routed runs (a cascade's inner router is one, named 'cloud')."""

    def done(runs: dict[str, dict[str, Any]]) -> bool:
        routed = [r for r in runs.values() if "routing_tier" in routing_metadata(r)]
        return sum(bool(r.get("end_time") and r.get("outputs")) for r in routed) >= count

    return done


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_export_writes_the_escalated_requests_only(
    langsmith_capture: LangSmithCaptureServer,
    openai_server: FakeOpenAIServer,
    tmp_path: Path,
) -> None:
    openai_server.enqueue(ScriptedReply("Cloud: 1889."), ScriptedReply("Cloud: Everest."))
    llm = ChatHybrid(
        local=local("Sure: Paris.", "Maybe 1900?", "Perhaps K2?", "Sure: noted."),
        cloud=make_chat_openai(openai_server),
        threshold=-0.6,
    )
    assert llm.invoke("Capital of France?").response_metadata["routing"]["tier"] == "local"
    assert llm.invoke("When was the Eiffel Tower built?").text == "Cloud: 1889."
    chunks = list(llm.stream([("system", "Be brief."), ("human", "Highest mountain?")]))
    assert "".join(c.text for c in chunks) == "Cloud: Everest."
    kept = llm.invoke("Mail ada@example.com the minutes.")  # the privacy rule keeps it local
    assert kept.response_metadata["routing"]["reason"] == "privacy_forced_local"
    flush_traces(langsmith_capture, routed_runs_ended(4), timeout=10)

    out = tmp_path / "escalations.jsonl"
    summary = export_escalations("test-project", out, client=langsmith.Client())
    assert (summary.rows, summary.runs, summary.skipped) == (2, 2, {})
    rows = read_rows(out)
    assert [r["question"] for r in rows] == [
        "When was the Eiffel Tower built?",
        "Highest mountain?",
    ]
    assert [r["answer"] for r in rows] == [["Cloud: 1889."], ["Cloud: Everest."]]
    assert [list(r["recorded"]) for r in rows] == [["gpt-4o"], ["gpt-4o"]]
    assert rows[0]["recorded"]["gpt-4o"]["response"] == "Cloud: 1889."
    assert all(r["decision"]["tier"] == "cloud" and r["decision"]["escalated"] for r in rows)
    assert [m["type"] for m in rows[1]["messages"]] == ["system", "human"]
    hybrid_ids = {r["id"] for r in langsmith_capture.runs_named("ChatHybrid")}
    assert {r["id"] for r in rows} <= hybrid_ids
    # The rows load as a dataset: the cloud's answer is the accepted one.
    assert [ex.answers for ex in load_dataset(out)] == [("Cloud: 1889.",), ("Cloud: Everest.",)]
    # The client listed the runs through the query endpoint with the metadata filter.
    [query] = [r for r in langsmith_capture.requests if r.path.endswith("/runs/query")]
    assert query.body["filter"] == ESCALATION_FILTER and query.body["run_type"] == "llm"
    assert langsmith_capture.errors == []


def test_export_redacts_and_skips_degraded_and_nested_runs(
    langsmith_capture: LangSmithCaptureServer,
    openai_server: FakeOpenAIServer,
    tmp_path: Path,
) -> None:
    openai_server.enqueue(ScriptedReply("Written to [EMAIL]."), ScriptedReply("Cascade answer."))
    redacting = ChatHybrid(
        local=local("Maybe?"),
        cloud=make_chat_openai(openai_server),
        threshold=-0.6,
        privacy=PrivacyRule(action="redact"),
    )
    answer = redacting.invoke("Write to ada@example.com about the launch.")
    assert answer.response_metadata["routing"]["privacy"]["action"] == "redact"
    inner = ChatHybrid(
        local=local("Maybe medium?"), cloud=make_chat_openai(openai_server), threshold=-0.6
    )
    cascade = ChatHybrid(local=local("Maybe small?"), cloud=inner, threshold=-0.6)
    assert cascade.invoke("A hard question?").text == "Cascade answer."
    broken = ChatHybrid(
        local=local("Maybe this."),
        cloud=make_chat_openai(openai_server, base_url="http://127.0.0.1:9/v1"),
        threshold=-0.6,
    )
    degraded = broken.invoke("An escalation the cloud fails?")
    assert degraded.response_metadata["routing"]["degraded"] is True
    flush_traces(langsmith_capture, routed_runs_ended(4), timeout=10)

    out = tmp_path / "redacted.jsonl"
    summary = export_escalations("test-project", out, redact=True)
    # The degraded request is not a cloud answer (tier local): LangSmith does not list it.
    # The cascade's inner router is skipped, its outer run stands for the request.
    assert (summary.rows, summary.skipped) == (2, {"inside another routed run": 1})
    rows = read_rows(out)
    assert rows[0]["question"] == "Write to [EMAIL] about the launch."
    assert "ada@example.com" not in out.read_text()
    assert rows[1]["answer"] == ["Cascade answer."]
    cascade_run = [
        r
        for r in langsmith_capture.runs_named("ChatHybrid")
        if r["parent_run_id"] is None and "hard question" in json.dumps(r["inputs"])
    ]
    assert [rows[1]["id"]] == [r["id"] for r in cascade_run]
    # limit bounds the runs read.
    assert export_escalations("test-project", tmp_path / "one.jsonl", limit=1).runs == 1


def test_export_of_an_unknown_project_raises(
    langsmith_capture: LangSmithCaptureServer, tmp_path: Path
) -> None:
    # Nothing was traced to it, so LangSmith knows no such project.
    with pytest.raises(langsmith.utils.LangSmithNotFoundError):
        export_escalations("no-such-project", tmp_path / "x.jsonl")
