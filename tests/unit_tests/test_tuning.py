"""The tuning core on a tiny random-weight Llama and a word-level tokenizer built here.

No weights are downloaded and no sockets are opened: the model is built from a
``LlamaConfig`` and the tokenizer from a ``tokenizers`` WordLevel model, both saved to a
temporary folder that ``tune()`` loads like any local model.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from langchain_hybrid._quiet import quiet_import_noise

quiet_import_noise()

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from langchain_hybrid.evaluation.collect import DECLINE_SENTENCE, prompt_for  # noqa: E402
from langchain_hybrid.evaluation.records import Example  # noqa: E402
from langchain_hybrid.tuning import (  # noqa: E402
    AdapterCard,
    AdapterMismatchError,
    AnswerCollator,
    TuneResult,
    apply_adapter,
    class_counts,
    class_weights,
    encode_rows,
    folder_fingerprint,
    load_rows,
    oversample,
    rows_from_examples,
    split_by_group,
    tune,
)
from langchain_hybrid.tuning.card import file_sha256  # noqa: E402
from langchain_hybrid.tuning.encoding import answer_ids, chat_for, prompt_ids  # noqa: E402
from langchain_hybrid.tuning.trainer import answer_loss  # noqa: E402

TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<unk>", "<|im_start|>", "<|im_end|>"]

ARTICLES = {
    "Birds": [
        ("The robin sings at dawn in the garden.", "When does the robin sing?", ["at dawn"]),
        ("The robin sings at dawn in the garden.", "What colour is the robin?", []),
        ("Owls hunt mice at night.", "What do owls hunt?", ["mice"]),
        ("Owls hunt mice at night.", "Where do owls sleep?", []),
    ],
    "Rivers": [
        ("The Nile flows north into the sea.", "Which way does the Nile flow?", ["north"]),
        ("The Nile flows north into the sea.", "How deep is the Nile?", []),
        ("The Thames runs through London.", "What city does the Thames run through?", ["London"]),
        ("The Thames runs through London.", "Who named the Thames?", []),
    ],
    "Stars": [
        ("The Sun is a yellow star.", "What colour is the Sun?", ["yellow"]),
        ("The Sun is a yellow star.", "How old is the Sun?", []),
        ("Sirius is the brightest star at night.", "Which star is brightest?", ["Sirius"]),
        ("Sirius is the brightest star at night.", "Who found Sirius?", []),
    ],
}


def _rows() -> list[dict[str, Any]]:
    rows = []
    for title, items in ARTICLES.items():
        for n, (context, question, answers) in enumerate(items):
            rows.append(
                {
                    "id": f"{title}-{n}",
                    "title": title,
                    "context": context,
                    "question": question,
                    "answers": answers,
                    "answerable": bool(answers),
                }
            )
    return rows


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _tokenizer() -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    examples = [Example.from_dict({**r, "answers": r["answers"]}) for r in _rows()]
    texts = [m.text for ex in examples for m in prompt_for(ex)]
    texts += [DECLINE_SENTENCE, "system user assistant"]
    words = sorted({w for t in texts for w in re.findall(r"\w+|[^\w\s]", t)})
    vocab = {tok: i for i, tok in enumerate(SPECIALS + words)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        additional_special_tokens=SPECIALS[1:],
    )
    tok.chat_template = TEMPLATE
    return tok


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Any:
    # Tiny matrices: a second thread only spins (and on a busy machine costs seconds).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    tok = _tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path]:
    rows = _rows()
    train = _write(tmp_path / "train.jsonl", [r for r in rows if r["title"] != "Stars"])
    val = _write(tmp_path / "val.jsonl", [r for r in rows if r["title"] == "Stars"])
    return train, val


def _tune(tiny_model: Path, train: Path, val: Path, output: Path, **kwargs: Any) -> TuneResult:
    settings: dict[str, Any] = {
        "model": tiny_model,
        "validation": val,
        "epochs": 6,
        "batch_size": 4,
        "learning_rate": 2e-2,
        "lora_rank": 4,
        "lora_layers": "all",
        "lora_dropout": 0.0,
        "eval_every": 4,
        "patience": None,
        "max_new_tokens": 4,
        "precision": "fp32",
        "device": "cpu",
        "progress": False,
    }
    settings.update(kwargs)
    return tune(train, output=output, **settings)


# ---------------------------------------------------------------- tune()


def test_lora_tuning_lowers_the_loss_saves_a_loadable_adapter_and_its_card(
    tiny_model: Path, data: tuple[Path, Path], tmp_path: Path
) -> None:
    train, val = data
    out = tmp_path / "adapter"
    result = _tune(tiny_model, train, val, out, validate_at_start=True)

    losses = [h["loss"] for h in result.history]
    assert result.history[0]["step"] == 0
    assert min(losses[1:]) < losses[0]
    assert result.stopped == "completed"

    assert (out / "adapter_config.json").is_file()
    assert (out / "adapter_model.safetensors").is_file()
    assert not (out / "checkpoints").exists()
    from safetensors.torch import load_file

    saved = load_file(str(out / "adapter_model.safetensors"))
    assert saved and all(t.dtype == torch.float16 for t in saved.values())

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    ids = torch.tensor([[1, 5, 6, 7]])
    before = base(input_ids=ids).logits
    tuned = PeftModel.from_pretrained(base, out)
    after = tuned(input_ids=ids).logits
    assert not torch.allclose(before, after)
    merged = tuned.merge_and_unload()
    assert torch.allclose(merged(input_ids=ids).logits, after, atol=1e-4)

    fingerprint = folder_fingerprint(tiny_model)
    applied = apply_adapter(
        AutoModelForCausalLM.from_pretrained(tiny_model), out, fingerprint=fingerprint
    )
    assert torch.allclose(applied(input_ids=ids).logits, after, atol=1e-4)
    with pytest.raises(AdapterMismatchError, match="was tuned on base weights"):
        apply_adapter(AutoModelForCausalLM.from_pretrained(tiny_model), out, fingerprint="other")

    card = AdapterCard.load(out)
    assert card == result.card
    assert card.method == "lora"
    assert card.base_model["fingerprint_kind"] == "sha256-safetensors"
    assert card.base_model["fingerprint"] == folder_fingerprint(tiny_model)
    assert card.base_model["source"] == str(tiny_model)
    assert card.hyperparameters["lora_rank"] == 4
    assert card.hyperparameters["lora_layers"] == "all"
    assert card.data["train"]["sha256"] == file_sha256(train)
    assert card.data["train"]["rows_by_class"] == {"answerable": 4, "unanswerable": 4}
    assert card.data["train"]["groups"] == 2
    assert card.data["train"]["grouping"] == "article title"
    assert card.data["validation"]["rows"] == 4
    assert card.training["steps"] == 12
    assert card.training["epochs_done"] == pytest.approx(6.0)
    assert card.training["seconds_per_example"] > 0
    assert card.training["best_step"] == card.validation["best"]["step"]
    best = card.validation["best"]
    assert best["n_answerable"] == 2 and best["n_unanswerable"] == 2
    assert 0 <= best["balanced_accuracy"] <= 1
    assert card.machine["device"] == "cpu" and card.machine["torch"]
    assert card.command["tune"]["epochs"] == 6
    assert (out / "tuning_validation_answers.jsonl").is_file()


def test_the_same_seed_trains_the_same(
    tiny_model: Path, data: tuple[Path, Path], tmp_path: Path
) -> None:
    train, val = data
    first = _tune(tiny_model, train, val, tmp_path / "a", epochs=2)
    second = _tune(tiny_model, train, val, tmp_path / "b", epochs=2)
    assert first.card.training["loss_history"] == second.card.training["loss_history"]
    a = (tmp_path / "a" / "adapter_model.safetensors").read_bytes()
    assert a == (tmp_path / "b" / "adapter_model.safetensors").read_bytes()


def test_full_tuning_saves_a_loadable_model(
    tiny_model: Path, data: tuple[Path, Path], tmp_path: Path
) -> None:
    train, val = data
    out = tmp_path / "full"
    result = _tune(tiny_model, train, val, out, method="full", learning_rate=1e-2, epochs=2)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(out)
    AutoTokenizer.from_pretrained(out)
    assert result.card.method == "full"
    assert "lora_rank" not in result.card.hyperparameters


def test_time_limit_stops_after_validating_and_saving(
    tiny_model: Path, data: tuple[Path, Path], tmp_path: Path
) -> None:
    train, val = data
    out = tmp_path / "limited"
    result = _tune(tiny_model, train, val, out, max_minutes=0.0)
    assert result.stopped == "time_limit"
    assert result.card.training["steps"] == 1
    assert result.card.validation["best"]["step"] == 1
    assert (out / "adapter_model.safetensors").is_file()


def test_ctrl_c_keeps_the_best_validated_weights(
    tiny_model: Path, data: tuple[Path, Path], tmp_path: Path
) -> None:
    train, val = data
    out = tmp_path / "interrupted"
    seen: list[int] = []

    def interrupt_on_second(metrics: dict[str, Any]) -> None:
        seen.append(metrics["step"])
        if len(seen) == 2:
            raise KeyboardInterrupt

    result = _tune(
        tiny_model,
        train,
        val,
        out,
        eval_every=2,
        on_validation=interrupt_on_second,
        keep_checkpoints=True,
    )
    assert result.stopped == "interrupted"
    assert result.card.training["best_step"] == 2
    assert result.card.training["steps"] == 4
    from safetensors.torch import load_file

    # The saved adapter is step 2's (the last validated and saved), not step 4's weights.
    saved = load_file(str(out / "adapter_model.safetensors"))
    best = load_file(str(out / "checkpoints" / "checkpoint-2" / "adapter_model.safetensors"))
    assert saved.keys() == best.keys()
    assert all(torch.equal(saved[k], best[k].to(torch.float16)) for k in saved)


def test_validation_split_holds_out_whole_articles(tiny_model: Path, tmp_path: Path) -> None:
    rows = _rows()
    data = _write(tmp_path / "all.jsonl", rows)
    result = tune(
        data,
        output=tmp_path / "split",
        model=tiny_model,
        validation_split=0.3,
        epochs=1,
        batch_size=4,
        lora_layers=1,
        max_new_tokens=2,
        precision="fp32",
        device="cpu",
        progress=False,
    )
    card = result.card
    assert card.data["train"]["groups"] + card.data["validation"]["groups"] == 3
    assert card.data["validation"]["rows"] == 4
    assert card.hyperparameters["lora_layers"] == [1]


# ---------------------------------------------------------------- data and encoding


def test_rows_load_cloud_targets_titles_and_exclusions(tmp_path: Path) -> None:
    rows = _rows()[:2] + [
        {
            "id": "cloud-1",
            "context": "Ada wrote the first program.",
            "question": "Who wrote it?",
            "recorded": {
                "m1": {"response": "Babbage", "correct": False},
                "m2": {"response": "Ada Lovelace", "correct": True},
            },
        },
        {
            "id": "cloud-2",
            "context": "Ada wrote the first program.",
            "question": "When?",
            "recorded": {"m1": {"response": "The text does not mention when."}},
        },
    ]
    path = _write(tmp_path / "rows.jsonl", rows)
    loaded = load_rows(path, exclude_ids=["Birds-0"])
    assert [r.example.id for r in loaded] == ["Birds-1", "cloud-1", "cloud-2"]
    assert loaded[0].target == DECLINE_SENTENCE and loaded[0].group == "title:Birds"
    assert (loaded[1].target, loaded[1].source, loaded[1].answerable) == (
        "Ada Lovelace",
        "cloud",
        True,
    )
    assert (loaded[2].target, loaded[2].answerable) == (DECLINE_SENTENCE, False)
    assert loaded[1].group == loaded[2].group and loaded[1].group.startswith("passage:")


def test_rows_without_label_or_cloud_answer_are_refused(tmp_path: Path) -> None:
    from langchain_hybrid.errors import DatasetError

    path = _write(tmp_path / "bad.jsonl", [{"question": "Who?", "context": "x"}])
    with pytest.raises(DatasetError, match=r"bad.jsonl:1: the row has no labelled answer"):
        load_rows(path)


def test_split_weights_and_oversampling() -> None:
    examples = [Example.from_dict(r) for r in _rows()]
    titles = {r["id"]: r["title"] for r in _rows()}
    rows = rows_from_examples(examples, titles=titles)
    train, val = split_by_group(rows, 0.3, seed=1)
    assert {r.group for r in train}.isdisjoint({r.group for r in val})
    assert len(val) == 4
    lopsided = [r for r in rows if r.answerable] + [r for r in rows if not r.answerable][:2]
    weights = class_weights(lopsided)
    counts = class_counts(lopsided)
    assert weights[True] * counts["answerable"] == pytest.approx(
        weights[False] * counts["unanswerable"]
    )
    assert class_weights(lopsided, answerable_weight=2.0)[True] > weights[True]
    assert class_counts(oversample(lopsided)) == {"answerable": 6, "unanswerable": 6}


def test_encoding_masks_the_prompt_and_ends_with_the_end_of_turn() -> None:
    tok = _tokenizer()
    example = Example.from_dict(_rows()[0])
    [row] = rows_from_examples([example])
    [encoded], skipped = encode_rows([row], tok)
    assert skipped == []
    prompt = prompt_ids(tok, example)
    expected = tok.apply_chat_template(
        chat_for(example), tokenize=True, add_generation_prompt=True, return_dict=False
    )
    assert prompt == list(expected)
    answer = answer_ids(tok, example, row.target)
    assert tok.decode(answer) == "at dawn <|im_end|>"
    assert list(encoded.input_ids) == prompt + answer
    batch = AnswerCollator(pad_id=tok.pad_token_id)([encoded.as_feature()])
    labels = batch["labels"][0].tolist()
    assert labels[: len(prompt)] == [-100] * len(prompt)
    assert labels[len(prompt) :] == answer
    assert encode_rows([row], tok, max_length=len(prompt))[1] == [0]


def test_answer_loss_weights_rows_not_tokens() -> None:
    logits = torch.zeros(2, 3, 4)
    logits[0, :, 1] = 5.0  # row 0 predicts its labels well
    labels = torch.tensor([[1, 1, 1], [-100, -100, 2]])
    even = answer_loss(logits, labels, torch.tensor([1.0, 1.0]))
    heavy = answer_loss(logits, labels, torch.tensor([1.0, 3.0]))
    assert heavy > even
