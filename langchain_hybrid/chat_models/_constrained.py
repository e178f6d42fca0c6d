r"""Constrained decoding: grammars for tool calls and JSON answers, applied per row as masks.

Why llguidance: of the three well-kept libraries that turn a JSON schema into a
token mask (xgrammar, llguidance, outlines), llguidance is the one that installs as a
single 3 MB wheel with no Python dependencies. xgrammar requires ``torch``, ``triton``
(hundreds of MB on Linux) and ``apache-tvm-ffi``; outlines brings ``outlines-core``
plus ``jsonschema``, ``pillow``, ``diskcache``, ``cloudpickle`` and ``genson`` and
drives transformers through its own model wrappers. llguidance (Microsoft's
guidance-ai, maintained, used by vLLM, SGLang and llama.cpp) computes a mask in
about 0.1 ms per token for the schemas here, takes JSON schemas and Lark grammars
(so a tool call is ``"<tool_call>\n" %json{...} "\n</tool_call>"``), and reads a
fast Hugging Face tokenizer directly.

How it plugs into the engine: :meth:`Grammar.start` gives each row of a batch its
own :class:`RowGrammar` (an ``LLMatcher``); :class:`TokenMasks`, a transformers
logits processor placed *after* the engine's log-prob capture, sets the logits of
tokens the grammar forbids to ``-inf`` for the constrained rows only, and the engine
advances each row's matcher with the token chosen. Unconstrained rows of the same
batch are untouched.

Log-probs are the model's **raw** distribution: the capture sees the logits before
the mask, so the recorded log-prob of a chosen token is the model's own log-prob of
it (what the confidence gate was calibrated on), not the renormalised log-prob
under the mask (which is 0 wherever the grammar allows one token). A low raw
log-prob on a forced token thus still tells the gate the model would not have
written it.

With ``tool_choice="auto"`` the reply starts free: a :class:`Grammar` with a
``trigger`` leaves the row alone until its text contains ``<tool_call>``, and only
then constrains the rest to valid calls. Plain answers stay exactly what the model
would have written.

Example:
    >>> from langchain_hybrid.chat_models._constrained import json_grammar, tool_calls_grammar
    >>> json_grammar({"type": "object", "properties": {"a": {"type": "integer"}}})[:1]
    '{'
    >>> tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    >>> "%json" in tool_calls_grammar(tools, parallel=False, after_open=False)
    True
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from langchain_hybrid._models import LoadedModel
from langchain_hybrid.chat_models._tools import CALL_CLOSE, CALL_OPEN, OutputFormat
from langchain_hybrid.errors import InvalidCallOptionError, MissingDependencyError

__all__ = [
    "closed",
    "JSON_OPTIONS",
    "MAX_PARALLEL_CALLS",
    "Grammar",
    "RowGrammar",
    "TokenMasks",
    "grammar_for",
    "json_grammar",
    "tool_calls_grammar",
]

JSON_OPTIONS: dict[str, Any] = {
    "whitespace_flexible": False,
    "item_separator": ", ",
    "key_separator": ": ",
    "lenient": True,
}
"""JSON as ``json.dumps`` writes it (``", "`` and ``": "``, no other whitespace).

Fixed whitespace keeps a small model from spending its tokens on newlines, which a
flexible grammar would allow without end; ``lenient`` ignores schema keywords the
compiler does not implement (such as ``format``) instead of failing.
"""

MAX_PARALLEL_CALLS = 8
"""At most this many calls in one constrained reply.

Parallel calls are allowed only when ``parallel_tool_calls=True`` is bound; by default a
constrained reply holds one call (OpenAI's default is parallel calls, but a small model
offered "another call or the end" after each call tends to repeat its call until
``max_tokens``).
"""


def _llguidance() -> Any:
    try:
        import llguidance
    except ImportError as e:  # pragma: no cover - a core dependency
        raise MissingDependencyError(
            "Constrained decoding needs llguidance: pip install llguidance, or pass "
            "ChatTransformers(constrained_decoding=False)."
        ) from e
    return llguidance


_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")


def closed(schema: Any) -> Any:
    """Return ``schema`` with every object that does not say otherwise closed to extra keys.

    An object schema without ``additionalProperties`` allows any other key, and a small
    model, free to add keys, adds them until ``max_tokens`` cuts the JSON. So, as OpenAI's
    strict mode requires, objects get ``"additionalProperties": false`` unless the schema
    sets it; ``{"type": "object"}`` alone (JSON mode: any object) stays open.

    Example:
        >>> closed({"type": "object", "properties": {"a": {"type": "object",
        ...     "properties": {}}}})["properties"]["a"]["additionalProperties"]
        False
        >>> closed({"type": "object"})
        {'type': 'object'}
    """
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in _SUBSCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {k: closed(v) for k, v in out[key].items()}
    for key in _SUBSCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [closed(v) for v in out[key]]
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = closed(out[key])
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def json_grammar(schema: dict[str, Any]) -> str:
    """Return the llguidance grammar of a JSON answer following ``schema`` (``{}``: any object).

    Example:
        >>> json_grammar({})[:1]
        '{'
    """
    return str(
        _llguidance().LLMatcher.grammar_from_json_schema(
            closed(schema) if schema else {"type": "object"}, JSON_OPTIONS
        )
    )


def _call_schema(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool["function"]
    return {
        "type": "object",
        "properties": {
            "name": {"const": function["name"]},
            "arguments": closed(function.get("parameters") or {"type": "object"}),
        },
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def tool_calls_grammar(tools: Sequence[dict[str, Any]], *, parallel: bool, after_open: bool) -> str:
    r"""Return a Lark grammar of one or more ``<tool_call>`` blocks calling ``tools``.

    ``after_open`` starts right after an already written ``<tool_call>`` (the ``auto``
    case, where the model chose to call), allowing one newline or space first.

    Example:
        >>> tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
        >>> print(tool_calls_grammar(tools, parallel=True, after_open=True).splitlines()[0])
        start: /[ \n]?/ call "\n</tool_call>" more{0,7}
    """
    schemas = [_call_schema(t) for t in tools]
    schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
    open_ = json.dumps(f"{CALL_OPEN}\n")
    close = json.dumps(f"\n{CALL_CLOSE}")
    head = f"/[ \\n]?/ call {close}" if after_open else f"{open_} call {close}"
    more = f" more{{0,{MAX_PARALLEL_CALLS - 1}}}" if parallel else ""
    lines = [
        f"start: {head}{more}",
        f"more: {json.dumps(chr(10))} {open_} call {close}",
        f"call: %json {json.dumps({**schema, 'x-guidance': JSON_OPTIONS})}",
    ]
    return "\n".join(lines)


class RowGrammar:
    """One row's matcher: masks its next token and follows the tokens chosen.

    Inactive until its trigger shows in the row's text (always active without one); a
    matcher that fails (a token it could not accept) goes inactive rather than mask
    every token.
    """

    def __init__(self, grammar: Grammar) -> None:
        self.grammar = grammar
        self.matcher: Any = None
        self.dead = False
        self.seen = 0
        if grammar.trigger is None:
            self._activate("")

    @property
    def active(self) -> bool:
        """Whether the next token is constrained."""
        return self.matcher is not None and not self.dead

    def _activate(self, written: str) -> None:
        llg = _llguidance()
        self.matcher = llg.LLMatcher(self.grammar.tokenizer, self.grammar.text, log_level=0)
        if written:
            tokens = self.grammar.tokenizer.tokenize_str(written)
            if not self.matcher.consume_tokens(tokens):
                self.dead = True
        self.dead = self.dead or bool(self.matcher.is_error())

    def bitmask(self) -> bytes:
        """Return the allowed-token bitmask (32 tokens per int32, little-endian bit order)."""
        return bytes(self.matcher.compute_bitmask())

    def advance(self, token_id: int, text: str) -> None:
        """Follow the token the row chose; ``text`` is the row's text so far (after it)."""
        if self.dead:
            return
        if self.matcher is None:
            trigger = self.grammar.trigger or ""
            found = text.find(trigger, max(0, self.seen - len(trigger)))
            self.seen = len(text)
            if found >= 0:
                self._activate(text[found + len(trigger) :])
            return
        if self.matcher.is_stopped():
            return
        if not self.matcher.consume_token(token_id):
            self.dead = True


class Grammar:
    """A compiled-once grammar for the rows of one request (see :func:`grammar_for`)."""

    def __init__(self, tokenizer: Any, text: str, trigger: str | None = None) -> None:
        self.tokenizer = tokenizer
        self.text = text
        self.trigger = trigger

    def start(self) -> RowGrammar:
        """Return a fresh matcher state for one row."""
        return RowGrammar(self)


class TokenMasks:
    """Logits processor: forbid, in constrained rows, the tokens their grammar does not allow.

    ``states[i]`` is row i's :class:`RowGrammar` or None; ``done(i)`` says whether row i
    has finished (its logits then no longer matter).
    """

    def __init__(self, states: Sequence[Any], done: Any) -> None:
        self.states = states
        self.done = done

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        rows = [
            i
            for i, state in enumerate(self.states)
            if state is not None and state.active and not self.done(i)
        ]
        if not rows:
            return scores
        import numpy as np

        raw = b"".join(self.states[i].bitmask() for i in rows)
        flat = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")
        bits: Any = flat.reshape(len(rows), -1)
        batch, vocab = scores.shape
        forbidden = np.zeros((batch, vocab), dtype=bool)
        width = min(vocab, bits.shape[1])
        forbidden[rows, :] = True
        forbidden[rows, :width] = bits[:, :width] == 0
        # Out of place: the engine's capture holds the raw scores, which must stay raw.
        return scores.masked_fill(torch.from_numpy(forbidden).to(scores.device), float("-inf"))


_TOKENIZERS: dict[int, Any] = {}
_TOKENIZERS_LOCK = threading.Lock()
_VALID: dict[tuple[int, str], str] = {}


def _tokenizer_for(loaded: LoadedModel, eos_ids: Sequence[int]) -> Any:
    """Return llguidance's view of the model's tokenizer (about 0.5 s to build; one per model)."""
    with _TOKENIZERS_LOCK:
        found = _TOKENIZERS.get(id(loaded))
        if found is None:
            import llguidance.hf

            config = loaded.model.config
            n_vocab = getattr(config, "vocab_size", None) or len(loaded.tokenizer)
            try:
                found = llguidance.hf.from_tokenizer(
                    loaded.tokenizer, n_vocab=int(n_vocab), eos_token=sorted(eos_ids)
                )
            except ValueError as e:
                raise InvalidCallOptionError(
                    f"Constrained decoding needs a fast tokenizer; {loaded.name!r} has a slow "
                    "one. Pass ChatTransformers(constrained_decoding=False)."
                ) from e
            _TOKENIZERS[id(loaded)] = found
        return found


def grammar_for(loaded: LoadedModel, eos_ids: Sequence[int], fmt: OutputFormat) -> Grammar | None:
    """Return the grammar a request's output format calls for, or None when the reply is free text.

    A ``response_format`` gives a JSON grammar from the first token; a required (or
    named) tool choice a grammar of ``<tool_call>`` blocks from the first token;
    ``tool_choice="auto"`` a grammar that starts once the model writes ``<tool_call>``.
    A grammar llguidance cannot compile is an :class:`InvalidCallOptionError`.
    """
    trigger: str | None = None
    if fmt.json_schema is not None:
        text = json_grammar(fmt.json_schema)
    elif fmt.offers_tools:
        required = fmt.tool_choice.mode == "required"
        # One call unless parallel calls are asked for: a small model, offered "another
        # call or the end" after each call, tends to repeat its call until max_tokens.
        parallel = fmt.parallel_tool_calls is True and fmt.tool_choice.name is None
        text = _llguidance().LLMatcher.grammar_from_lark(
            tool_calls_grammar(fmt.offered, parallel=parallel, after_open=not required)
        )
        trigger = None if required else CALL_OPEN
    else:
        return None
    tokenizer = _tokenizer_for(loaded, eos_ids)
    key = (id(tokenizer), text)
    error = _VALID.get(key)
    if error is None:
        failed, messages = _llguidance().LLMatcher.validate_grammar_with_warnings(text, tokenizer)
        error = messages[0] if failed else ""
        if len(_VALID) > 256:
            _VALID.clear()
        _VALID[key] = error
    if error:
        raise InvalidCallOptionError(
            f"The schema cannot be compiled for constrained decoding: {error}. Simplify the "
            "schema, or pass ChatTransformers(constrained_decoding=False)."
        )
    return Grammar(tokenizer, text, trigger)
