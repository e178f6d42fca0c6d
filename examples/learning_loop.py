"""The learning loop's first step, offline: record the requests the cloud answered.

A ``ChatHybrid`` (the embedded local model, a scripted cloud on 127.0.0.1) answers a few
questions with an ``EscalationRecorder`` attached: each request the cloud answered is
appended to a JSON Lines file with the cloud's answer, in the shape ``load_dataset``,
``calibrate``, ``eval`` and ``tune`` read. A request the privacy rule kept local (it holds
an e-mail address) is never written. The script prints the rows and the
``langchain-hybrid tune`` command to run next; it trains nothing. With a key, pass
``ChatOpenAI(model="gpt-4o")`` as ``cloud``.

Run: ``python examples/learning_loop.py [FILE]`` (default: a file in a new temporary
folder).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI

from langchain_hybrid import ChatHybrid
from langchain_hybrid.tuning import EscalationRecorder

sys.path.insert(0, str(Path(__file__).parent))
from scripted_cloud import ScriptedCloud  # noqa: E402

QUESTIONS = [
    "What is the capital of France?",
    "Who wrote the novel Middlemarch?",
    "In which year did the Berlin Wall fall?",
    "What is the chemical symbol for tungsten?",
    "Please send the answer to ada@example.com: who painted the Mona Lisa?",
]

# What the scripted cloud answers, by a phrase of the question.
CLOUD_ANSWERS = {
    "capital of France": "Paris.",
    "Middlemarch": "George Eliot.",
    "Berlin Wall": "1989.",
    "tungsten": "W.",
    "Mona Lisa": "Leonardo da Vinci.",
}


def cloud_reply(body: dict[str, Any]) -> str:
    """The scripted cloud's answer to a chat-completions request."""
    user = [m for m in body.get("messages", []) if m.get("role") == "user"]
    text = str(user[-1].get("content") or "") if user else ""
    return next((a for phrase, a in CLOUD_ANSWERS.items() if phrase in text), "I do not know.")


def run(local: BaseChatModel, cloud: BaseChatModel, path: Path) -> list[dict[str, Any]]:
    """Answer the questions with a recorder attached; print and return the rows written."""
    recorder = EscalationRecorder(path)
    llm = ChatHybrid(local=local, cloud=cloud, threshold=-0.6).with_config(callbacks=[recorder])
    for question in QUESTIONS:
        routing = llm.invoke(question).response_metadata["routing"]
        print(f"{routing['tier']:5} ({routing['reason']}): {question}")
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    print(f"\n{recorder.rows_written} of {len(QUESTIONS)} requests recorded in {path}:")
    for row in rows:
        model, recorded = next(iter(row["recorded"].items()))
        print(f"  {row['question']!r} -> {recorded['response']!r} ({model})")
    print(
        "\nOnce the file holds a few hundred rows, tune the local model on them (this script "
        "trains nothing):\n"
        f"  langchain-hybrid tune --data {path} --output adapter/ --epochs 2 --max-minutes 30\n"
        "then calibrate on rows not used for tuning (--adapter adapter/) and evaluate on "
        "rows used for neither: see docs/tuning.md."
    )
    return rows


def main(
    local: BaseChatModel | None = None,
    cloud: BaseChatModel | None = None,
    path: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Run with ``local`` (default: the embedded model) and ``cloud`` (default: scripted)."""
    if path is None:
        path = Path(tempfile.mkdtemp(prefix="learning-loop-")) / "escalations.jsonl"
    if local is None:
        from langchain_hybrid import ChatTransformers

        local = ChatTransformers(max_tokens=32)
    if cloud is not None:
        return run(local, cloud, Path(path))
    with ScriptedCloud(cloud_reply) as scripted:
        chat = ChatOpenAI(model="gpt-4o", base_url=scripted.base_url, api_key="none")
        return run(local, chat, Path(path))


if __name__ == "__main__":
    main(path=sys.argv[1] if len(sys.argv) > 1 else None)
