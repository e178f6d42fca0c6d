"""Reads a langchain-huggingface pipeline object into a ChatTransformers on the same weights.

Behind ``ChatTransformers.from_huggingface`` (and, through
:func:`langchain_hybrid.huggingface.as_local_tier`, ``ChatHybrid(local=pipeline)``).
langchain-huggingface's classes are recognised by name, so importing this module imports
neither it nor transformers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from langchain_hybrid.errors import ModelNotAvailableError

__all__ = ["chat_transformers_from", "is_chat_huggingface", "is_endpoint_llm", "is_pipeline_llm"]

_C = TypeVar("_C")

#: Pipeline generation settings that have no ChatTransformers counterpart are reported, not lost.
_PIPELINE_SETTINGS = {"max_new_tokens", "max_tokens", "temperature", "do_sample", "top_p", "top_k"}
_IGNORED_QUIETLY = {"return_full_text"}


def _class_name(obj: object) -> str:
    return type(obj).__name__


def is_pipeline_llm(obj: object) -> bool:
    return _class_name(obj) == "HuggingFacePipeline" and hasattr(obj, "pipeline")


def is_endpoint_llm(obj: object) -> bool:
    return _class_name(obj) == "HuggingFaceEndpoint"


def is_chat_huggingface(obj: object) -> bool:
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


def chat_transformers_from(cls: type[_C], obj: Any, **overrides: Any) -> _C:
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
    chat = obj if is_chat_huggingface(obj) else None
    llm = chat.llm if chat is not None else obj
    if not is_pipeline_llm(llm):
        where = _class_name(llm)
        hint = (
            " An endpoint is already a served model: pass the ChatHuggingFace (or the "
            "HuggingFaceEndpoint) to ChatHybrid(local=...) as it is."
            if is_endpoint_llm(llm)
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
    build: Callable[..., _C] = cls  # ChatTransformers: takes model= and device=
    return build(model=spec.model, device=spec.device, **{**settings, **overrides})
