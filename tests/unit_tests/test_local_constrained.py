"""Constrained decoding without weights: grammars on a tiny byte-level tokenizer, masks per row."""

import json
from typing import Any

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from langchain_hybrid.chat_models._constrained import (
    Grammar,
    RowGrammar,
    TokenMasks,
    json_grammar,
    tool_calls_grammar,
)
from langchain_hybrid.chat_models._tools import OutputFormat, format_tools, parse_reply

llguidance = pytest.importorskip("llguidance")


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any]:
    """A byte-level BPE tokenizer: the 256 bytes, a few merges, and an end token (id 256+)."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    merges = [("Ġ", "t"), ("Ġt", "o"), ("o", "o"), ("{", '"')]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab["<eos>"] = len(vocab)
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    hf = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<eos>")
    import llguidance.hf

    return hf, llguidance.hf.from_tokenizer(hf, n_vocab=len(vocab), eos_token=hf.eos_token_id)


def decode(
    grammars: list[Grammar | None], tiny: tuple[Any, Any], prefer: list[str], steps: int = 80
):
    """Greedy decoding of a fake model that prefers, per row, the next byte of ``prefer[i]``.

    Off that script it prefers ending, then closing a string, an object, an item, then a digit.
    """
    hf, _ = tiny
    eos = hf.eos_token_id
    vocab = len(hf)
    states = [g.start() if g is not None else None for g in grammars]
    texts = ["" for _ in grammars]
    done = [False for _ in grammars]
    masks = TokenMasks(states, lambda i: done[i])
    for _ in range(steps):
        scores = torch.randn(len(grammars), vocab) * 0.01
        for i, want in enumerate(prefer):
            rest = want[len(texts[i]) :] if want.startswith(texts[i]) else ""
            if rest:
                scores[i, hf.convert_tokens_to_ids(hf.tokenize(rest[:1]))] += 5.0
            else:  # off its script: it would rather end, close a string or an object
                for bonus, token in enumerate(["1", ",", "}", '"', "<eos>"]):
                    scores[i, hf.convert_tokens_to_ids(token)] += 2.0 + bonus
        raw = scores.clone()
        masked = masks(None, scores)
        assert torch.equal(scores, raw)  # the raw scores (the log-probs' source) stay raw
        chosen = masked.argmax(-1).tolist()
        for i, token in enumerate(chosen):
            if done[i]:
                continue
            if token == eos:
                done[i] = True
                continue
            texts[i] += hf.decode([token])
            if states[i] is not None:
                states[i].advance(token, texts[i])
        if all(done):
            break
    return texts, done


SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def test_a_json_schema_row_is_forced_to_valid_json_while_a_free_row_is_untouched(tiny) -> None:
    hf, llt = tiny
    grammar = Grammar(llt, json_grammar(SCHEMA))
    texts, done = decode(
        [grammar, None], tiny, prefer=["Sure! Alice is 34 years old.", "Sure! Alice is 34."]
    )
    value = json.loads(texts[0])
    assert set(value) == {"name", "age"} and isinstance(value["age"], int)
    assert texts[1] == "Sure! Alice is 34."
    assert all(done)


def test_the_model_s_choice_is_kept_where_the_grammar_allows_it(tiny) -> None:
    hf, llt = tiny
    grammar = Grammar(llt, json_grammar(SCHEMA))
    texts, _ = decode([grammar], tiny, prefer=['{"name": "Alice", "age": 34}'])
    assert json.loads(texts[0]) == {"name": "Alice", "age": 34}


def test_a_required_tool_call_is_a_valid_call_of_a_bound_tool(tiny) -> None:
    hf, llt = tiny

    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    tools = format_tools([add])
    lark = llguidance.LLMatcher.grammar_from_lark(
        tool_calls_grammar(tools, parallel=False, after_open=False)
    )
    texts, done = decode([Grammar(llt, lark)], tiny, prefer=["I think it is 3."], steps=120)
    reply = parse_reply(texts[0], OutputFormat.from_call_options({"tools": tools}))
    assert done[0]
    assert reply.invalid_tool_calls == []
    (call,) = reply.tool_calls
    assert call["name"] == "add" and set(call["args"]) == {"a", "b"}


def test_with_auto_the_row_is_free_until_it_opens_a_tool_call(tiny) -> None:
    hf, llt = tiny

    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    tools = format_tools([add])
    lark = llguidance.LLMatcher.grammar_from_lark(
        tool_calls_grammar(tools, parallel=False, after_open=True)
    )
    grammar = Grammar(llt, lark, trigger="<tool_call>")
    plain = "No tool needed: 1 + 2 is 3."
    texts, _ = decode([grammar], tiny, prefer=[plain])
    assert texts[0] == plain
    texts, _ = decode(
        [grammar],
        tiny,
        prefer=['Let me add.<tool_call>\n{"name": "add", "arguments": {"a": 1'],
        steps=120,
    )
    reply = parse_reply(texts[0], OutputFormat.from_call_options({"tools": tools}))
    assert reply.content == "Let me add."
    assert reply.tool_calls[0]["args"]["a"] == 1 and "b" in reply.tool_calls[0]["args"]


def test_a_matcher_that_cannot_follow_goes_inactive_instead_of_masking_everything(tiny) -> None:
    hf, llt = tiny
    state = RowGrammar(Grammar(llt, json_grammar(SCHEMA)))
    assert state.active
    state.advance(hf.convert_tokens_to_ids("x"), "x")  # not JSON: the matcher rejects it
    assert not state.active
