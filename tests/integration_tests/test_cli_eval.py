"""``langchain-hybrid eval`` through the installed entry point, with the embedded model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from langchain_hybrid import ChatTransformers
from langchain_hybrid.evaluation import collect_local, load_dataset, load_records, save_records
from tests.support.openai_fake import ScriptedReply, last_user_text
from tests.support.openai_server import FakeOpenAIServer
from tests.support.quiet import assert_quiet

ROOT = Path(__file__).parents[2]
GSM8K = ROOT / "examples" / "data" / "gsm8k_recorded_sample.jsonl"
SCRIPT = Path(sys.executable).parent / "langchain-hybrid"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert SCRIPT.exists(), f"{SCRIPT} is missing: install the package (make setup)"
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def test_eval_with_the_embedded_model_and_replayed_gpt4(tmp_path: Path) -> None:
    report_path, records_path = tmp_path / "report.json", tmp_path / "records.jsonl"
    out = run_cli(
        "eval",
        "--data",
        str(GSM8K),
        "--limit",
        "5",
        "--max-tokens",
        "12",
        "--cloud-replay",
        "gpt-4-1106-preview",
        "--prices",
        "paper-gpt4",
        "--output",
        str(report_path),
        "--save-records",
        str(records_path),
    )
    assert out.returncode == 0, out.stderr
    assert_quiet(out.stderr)
    assert "Cloud-only" in out.stdout and "Hybrid" in out.stdout
    report = json.loads(report_path.read_text())
    examples = load_dataset(GSM8K, limit=5)
    recorded = sum(ex.recorded["gpt-4-1106-preview"].correct is True for ex in examples)
    rows = {row["system"]: row for row in report["rows"]}
    assert rows["cloud-only"]["accuracy"] == 100 * recorded / 5
    assert report["settings"]["local_model"] == "SmolLM2-135M-Instruct"

    records = load_records(records_path)
    assert [r.example_id for r in records] == [ex.id for ex in examples]
    for record in records:  # the real local answers, with their log-probs
        assert record.max_tokens == 12
        content = record.answer.response_metadata["logprobs"]["content"]
        assert 0 < len(content) <= 12
        assert len(content[0]["top_logprobs"]) == 5
    assert rows["cloud-only"]["cost_usd"] > 0


def test_eval_with_a_live_cloud_on_loopback_reusing_records(
    tmp_path: Path, local_llm: ChatTransformers
) -> None:
    # Local answers come from records collected here with the session's model (the CLI
    # loads none); the cloud is a live OpenAI-compatible endpoint on 127.0.0.1 that
    # answers each question's gold number.
    examples = load_dataset(GSM8K, limit=3)
    gold = {ex.question: ex.answers[0] for ex in examples}
    records_path = tmp_path / "records.jsonl"
    save_records(records_path, collect_local(examples, local_llm, max_tokens=8, progress=False))

    def respond(body: dict[str, Any]) -> ScriptedReply:
        return ScriptedReply(f"The answer is {gold.get(last_user_text(body), 'unknown')}.")

    report_path = tmp_path / "report.json"
    with FakeOpenAIServer(responder=respond) as server:
        out = run_cli(
            "eval", "--data", str(GSM8K), "--limit", "3", "--records", str(records_path),
            "--cloud-base-url", server.base_url, "--cloud-model", "gpt-4o",
            "--output", str(report_path),
            env={"OPENAI_API_KEY": "test-key"},
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert len(server.chat_requests) == 3  # cloud-only needs every example
    report = json.loads(report_path.read_text())
    assert report["cloud_source"] == "live gpt-4o"
    assert report["rows"][0]["accuracy"] == 100.0
    assert report["rows"][0]["latency_mean_s"] is not None
