"""``langchain-hybrid calibrate`` through the installed entry point, with the embedded model;
the policy it writes routes the real model in ChatHybrid."""

from __future__ import annotations

import json
from pathlib import Path

from langchain_hybrid import ChatHybrid, ChatTransformers, RoutingPolicy
from langchain_hybrid.evaluation import load_dataset, load_records, prompt_for
from tests.integration_tests.test_cli_eval import ROOT, run_cli
from tests.support.fixtures import make_chat_openai
from tests.support.openai_server import FakeOpenAIServer

SQUAD = ROOT / "examples" / "data" / "squad2_rag_sample.jsonl"


def test_calibrate_with_the_embedded_model(tmp_path: Path, local_llm: ChatTransformers) -> None:
    policy_path, records_path = tmp_path / "policy.json", tmp_path / "records.jsonl"
    out = run_cli(
        "calibrate", "--data", str(SQUAD), "--limit", "12", "--seed", "3",
        "--max-tokens", "16", "--batch-size", "12", "--cloud-accuracy", "0.85",
        "--target-cloud-rate", "0.5", "--min-local-accuracy", "0",
        "--output", str(policy_path), "--save-records", str(records_path),
        "--plot", str(tmp_path / "curve.png"),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "AUROC at predicting a right local answer, n=12" in out.stdout
    assert f"Policy written to {policy_path}" in out.stdout
    assert "Loading weights" not in out.stderr  # no library progress bars
    assert (tmp_path / "curve.png").is_file()

    records = load_records(records_path)
    assert len(records) == 12 and all(r.max_tokens == 16 for r in records)
    policy = RoutingPolicy.load(policy_path)
    fitted = json.loads(policy_path.read_text())["fitted_on"]
    assert fitted["dataset"] == "squad2_rag_sample.jsonl" and fitted["n"] == 12

    # The policy routes the real local model with the fitted scorer and threshold.
    examples = {ex.id: ex for ex in load_dataset(SQUAD, limit=12, seed=3)}
    with FakeOpenAIServer() as server:
        llm = ChatHybrid(local=local_llm, cloud=make_chat_openai(server), policy=policy)
        for record in records[:3]:
            prompt = list(prompt_for(examples[record.example_id]))
            routing = llm.invoke(prompt, max_tokens=16).response_metadata["routing"]
            if fitted["met"]:
                assert routing["scorer"] == policy.scorer.name
                assert routing["threshold"] == policy.threshold
                assert routing["tier"] == ("cloud" if routing["escalated"] else "local")
            else:  # the cloud-only policy
                assert routing["tier"] == "cloud" and routing["reason"] == "rule_force_cloud"
