"""Turns what a user passes as ``local=`` and ``cloud=`` into ChatHybrid's tiers or one error.

* ``local``: a chat model as it is; a langchain-huggingface object through
  :func:`~langchain_hybrid.huggingface.as_local_tier`; a Hugging Face model id, folder or
  ``.gguf`` path becomes ``ChatTransformers(model=...)``; left out, the embedded model.
* ``cloud``: a chat model as it is; a model name (``"gpt-4o"``, ``"openai:gpt-4o-mini"``,
  ``"anthropic:claude-sonnet-4-5"``) goes through LangChain's ``init_chat_model``; it
  cannot be left out.

Anything else is a :class:`~langchain_hybrid.errors.TierSettingError` saying what to pass.

Example:
    >>> from langchain_core.language_models import FakeListChatModel
    >>> fake = FakeListChatModel(responses=["x"])
    >>> local_tier(fake) is fake, cloud_tier(fake) is fake
    (True, True)
    >>> cloud_tier("gpt-4o")  # doctest: +SKIP
    ChatOpenAI(model_name='gpt-4o', ...)
    >>> try:
    ...     cloud_tier(None)
    ... except TierSettingError as e:
    ...     print(str(e)[:45])
    ChatHybrid needs cloud=: the model it escalat
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel

from langchain_hybrid.errors import MissingDependencyError, TierSettingError

__all__ = ["cloud_tier", "embedded_local_tier", "local_tier"]

_CLOUD_EXAMPLES = 'cloud=ChatOpenAI(model="gpt-4o") or a model name such as cloud="gpt-4o"'
_LOCAL_EXAMPLES = (
    'local=ChatTransformers(model="HuggingFaceTB/SmolLM2-135M-Instruct"), a model id or '
    'folder such as local="Qwen/Qwen2.5-0.5B-Instruct", or leave it out for the embedded model'
)


def embedded_local_tier() -> BaseChatModel:
    """Return the embedded local model (``ChatTransformers()``): ``local=``'s default."""
    from langchain_hybrid.chat_models.transformers import ChatTransformers

    return ChatTransformers()


def local_tier(value: Any) -> Any:
    """Return the local tier for ``value`` (see the module docstring)."""
    if isinstance(value, str):
        from langchain_hybrid.chat_models.transformers import ChatTransformers

        return ChatTransformers(model=_named("local", value, _LOCAL_EXAMPLES))
    from langchain_hybrid.huggingface import as_local_tier

    return _chat_model("local", as_local_tier(value), value, _LOCAL_EXAMPLES)


def cloud_tier(value: Any) -> Any:
    """Return the cloud tier for ``value`` (see the module docstring).

    A ``ChatOpenAI`` is asked for log-probs (``logprobs=True``) unless it says otherwise.
    """
    if value is None:
        raise TierSettingError(
            "ChatHybrid needs cloud=: the model it escalates to, e.g. " + _CLOUD_EXAMPLES + "."
        )
    if isinstance(value, str):
        value = _init_chat_model(_named("cloud", value, _CLOUD_EXAMPLES))
    return _with_logprobs(_chat_model("cloud", value, value, _CLOUD_EXAMPLES))


def _named(side: str, name: str, examples: str) -> str:
    if not name.strip():
        raise TierSettingError(f"{side}= is an empty model name; pass {examples}.")
    return name


def _chat_model(side: str, tier: Any, given: Any, examples: str) -> BaseChatModel:
    if not isinstance(tier, BaseChatModel):
        raise TierSettingError(
            f"{side}= must be a chat model or a model name, got {_described(given)}. "
            f"Pass {examples}."
        )
    return tier


def _with_logprobs(cloud: BaseChatModel) -> BaseChatModel:
    """Ask a ChatOpenAI cloud tier for log-probs when the user did not say."""
    from langchain_openai import ChatOpenAI

    if isinstance(cloud, ChatOpenAI) and cloud.logprobs is None:
        return cloud.model_copy(update={"logprobs": True})
    return cloud


def _init_chat_model(name: str) -> BaseChatModel:
    try:
        from langchain.chat_models import init_chat_model
    except ImportError:
        provider, _, model_name = name.rpartition(":")
        if provider in ("", "openai"):
            from langchain_openai import ChatOpenAI

            return ChatOpenAI(model=model_name)
        raise MissingDependencyError(
            f"cloud={name!r} names a model of {provider!r}, which LangChain's init_chat_model "
            "builds: pip install langchain (and the provider's package), or pass the chat "
            "model itself."
        ) from None
    try:
        model = init_chat_model(name)
    except (ValueError, ImportError) as e:
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TierSettingError(
            f"cloud={name!r} is not a model init_chat_model can build ({why}). Pass "
            f"{_CLOUD_EXAMPLES}, or 'provider:model' with the provider's package installed."
        ) from e
    if not isinstance(model, BaseChatModel):  # a configurable model: not one fixed cloud
        raise TierSettingError(f"cloud={name!r} did not name one chat model; pass the model.")
    return model


def _described(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} ({text if len(text) <= 40 else text[:37] + '...'})"
