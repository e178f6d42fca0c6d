"""langchain-huggingface objects as tiers: pipelines share their weights, TGI gives log-probs."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from huggingface_hub import InferenceClient
from langchain_huggingface import ChatHuggingFace, HuggingFaceEndpoint, HuggingFacePipeline
from langchain_openai import ChatOpenAI

from langchain_hybrid import ChatHybrid, ChatTransformers
from langchain_hybrid.huggingface import embedded_model_folder, logprobs_from_tgi_details
from langchain_hybrid.routing.confidence import MeanLogprobScorer
from tests.support.fixtures import make_chat_openai
from tests.support.openai_server import FakeOpenAIServer
from tests.support.tgi_server import FakeTGIServer


@pytest.fixture(scope="module")
def hf_pipeline() -> HuggingFacePipeline:
    """A real HuggingFacePipeline on the embedded model's folder (offline)."""
    return HuggingFacePipeline.from_model_id(
        str(embedded_model_folder()),
        task="text-generation",
        pipeline_kwargs={"max_new_tokens": 12, "do_sample": True, "temperature": 0.7},
    )


def _shares_weights(llm: ChatTransformers, pipe: HuggingFacePipeline) -> bool:
    model = pipe.pipeline.model
    ours = dict(llm._loaded.model.named_parameters())
    theirs = dict(model.named_parameters())
    return (
        llm._loaded.model is model
        and llm._loaded.tokenizer is pipe.pipeline.tokenizer
        and ours.keys() == theirs.keys()
        and all(ours[k].data_ptr() == theirs[k].data_ptr() for k in ours)
    )


def test_from_pipeline_reuses_the_weights_and_settings(hf_pipeline: HuggingFacePipeline) -> None:
    llm = ChatTransformers.from_huggingface(hf_pipeline, temperature=0.0, top_logprobs=2)
    assert _shares_weights(llm, hf_pipeline)
    assert llm.max_tokens == 12  # the pipeline's max_new_tokens
    assert llm.temperature == 0.0  # the override wins over the pipeline's 0.7
    msg = llm.invoke("What is the capital of France?")
    entries = msg.response_metadata["logprobs"]["content"]
    assert msg.content and entries and len(entries[0]["top_logprobs"]) == 2
    # Built twice from the same pipeline: still one copy.
    again = ChatTransformers.from_huggingface(hf_pipeline)
    assert again._loaded is llm._loaded
    assert again.temperature == 0.7 and again.max_tokens == 12


def test_from_chat_huggingface_carries_its_settings(hf_pipeline: HuggingFacePipeline) -> None:
    chat = ChatHuggingFace(
        llm=hf_pipeline, tokenizer=hf_pipeline.pipeline.tokenizer, stop_sequences=["\n\n"], seed=3
    )
    llm = ChatTransformers.from_huggingface(chat)
    assert _shares_weights(llm, hf_pipeline)
    assert (llm.stop, llm.seed, llm.max_tokens) == (["\n\n"], 3, 12)


def test_unmapped_pipeline_settings_warn(hf_pipeline: HuggingFacePipeline) -> None:
    odd = hf_pipeline.model_copy(update={"pipeline_kwargs": {"num_beams": 4}})
    with pytest.warns(UserWarning, match="num_beams"):
        ChatTransformers.from_huggingface(odd)


def test_chat_hybrid_takes_a_pipeline_as_local_tier(
    hf_pipeline: HuggingFacePipeline, openai_server: FakeOpenAIServer
) -> None:
    chat = ChatHuggingFace(llm=hf_pipeline, tokenizer=hf_pipeline.pipeline.tokenizer)
    cloud = make_chat_openai(openai_server)
    for local in (chat, hf_pipeline):
        llm = ChatHybrid(local=local, cloud=cloud, threshold=-100.0, max_tokens=64)
        assert isinstance(llm.local, ChatTransformers)
        assert _shares_weights(llm.local, hf_pipeline)
    msg = llm.invoke("Say hello.")
    routing = msg.response_metadata["routing"]
    assert (routing["tier"], routing["reason"]) == ("local", "confident"), routing
    assert not openai_server.chat_requests


def test_endpoint_tier_reads_tgi_chat_logprobs(openai_server: FakeOpenAIServer) -> None:
    cloud = make_chat_openai(openai_server)
    with FakeTGIServer() as tgi:
        endpoint = HuggingFaceEndpoint(endpoint_url=tgi.url, max_new_tokens=16)
        for local in (endpoint, ChatHuggingFace(llm=endpoint)):
            llm = ChatHybrid(local=local, cloud=cloud, threshold=-1.0)
            assert isinstance(llm.local, ChatHuggingFace) and llm.local.logprobs is True
            msg = llm.invoke("What is the capital of France?")
            routing = msg.response_metadata["routing"]
            assert msg.content == "Paris is the capital."
            assert routing["tier"] == "local", routing
            assert routing["confidence"] == pytest.approx(sum(tgi.logprobs) / 5)
        # TGI's OpenAI-compatible API through ChatOpenAI, the other documented path.
        tgi_openai = ChatOpenAI(
            base_url=f"{tgi.url}/v1", api_key="-", model="tgi", logprobs=True, max_retries=0
        )
        msg = ChatHybrid(local=tgi_openai, cloud=cloud, threshold=-1.0).invoke("Hi")
        assert msg.response_metadata["routing"]["tier"] == "local"
        # A tier that is less sure escalates, judged on TGI's own log-probs.
        tgi.logprobs = [-3.0] * 5
        msg = ChatHybrid(local=endpoint, cloud=cloud, threshold=-1.0).invoke("Hi")
        assert msg.response_metadata["routing"]["tier"] == "cloud"
        chat_bodies = [r.body for r in tgi.requests if r.path.startswith("/v1/chat")]
        assert chat_bodies and all(b["logprobs"] is True for b in chat_bodies)
    assert not tgi.errors


def test_tgi_generate_details_map_to_openai_logprobs() -> None:
    with FakeTGIServer() as tgi:
        client = InferenceClient(model=tgi.url)
        out: Any = client.text_generation("Capital of France?", details=True, top_n_tokens=2)
    logprobs = logprobs_from_tgi_details(out.details)
    content = logprobs["content"]
    assert [e["token"] for e in content] == tgi.tokens  # the special end token is left out
    assert [e["logprob"] for e in content] == tgi.logprobs
    assert content[0]["bytes"] == list(b"Paris")
    assert [t["token"] for t in content[0]["top_logprobs"]] == ["Paris", " alt0"]
    confidence = MeanLogprobScorer().score(logprobs)
    assert confidence.score == pytest.approx(sum(tgi.logprobs) / 5)


def test_from_huggingface_refuses_an_endpoint() -> None:
    from langchain_hybrid.errors import ModelNotAvailableError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        endpoint = HuggingFaceEndpoint(endpoint_url="http://127.0.0.1:9", max_new_tokens=4)
    with pytest.raises(ModelNotAvailableError, match="served model"):
        ChatTransformers.from_huggingface(ChatHuggingFace(llm=endpoint))
