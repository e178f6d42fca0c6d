"""Tune a local model on labelled questions: a LoRA adapter (or full weights) and its card.

:func:`tune` loads the base model (the embedded SmolLM2-135M-Instruct by default),
encodes the rows with the exact prompt the live route sends
(:mod:`~langchain_hybrid.tuning.encoding`), balances the answerable and unanswerable
classes, trains with :class:`~langchain_hybrid.tuning.trainer.AnswerTrainer`, validates
by loss and by per-class generation accuracy, stops early on the per-class metric, at
``max_minutes`` or on Ctrl-C, and saves the best validated weights with an
:class:`~langchain_hybrid.tuning.card.AdapterCard`.

Example:
    >>> result = tune("train.jsonl", output="adapter/", validation="val.jsonl",
    ...               epochs=2, max_minutes=60)  # doctest: +SKIP
    >>> result.card.validation["best"]["balanced_accuracy"]  # doctest: +SKIP
    0.61
"""

from __future__ import annotations

import logging
import math
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from langchain_hybrid._quiet import quiet_import_noise
from langchain_hybrid.errors import MissingDependencyError
from langchain_hybrid.evaluation.records import Example
from langchain_hybrid.tuning.card import AdapterCard, machine_info, model_fingerprint
from langchain_hybrid.tuning.data import (
    AnswerChoice,
    Balance,
    TuningRow,
    class_counts,
    class_weights,
    data_fingerprint,
    load_rows,
    oversample,
    rows_from_examples,
    split_by_group,
)
from langchain_hybrid.tuning.validation import validation_subset

__all__ = [
    "DEFAULT_LORA_MODULES",
    "Method",
    "Precision",
    "TuneResult",
    "cpu_supports_bf16",
    "lora_layer_indices",
    "tune",
]

logger = logging.getLogger("langchain_hybrid.tuning")

#: What is trained: a LoRA adapter on a frozen base, or every weight (small models only).
Method = Literal["lora", "full"]
#: Arithmetic of training: bfloat16 autocast, float32, or bfloat16 where the hardware has it.
Precision = Literal["auto", "bf16", "fp32"]

#: The linear layers a LoRA adapter wraps by default: attention and MLP of a Llama-style
#: decoder (``"all-linear"`` for other architectures).
DEFAULT_LORA_MODULES: tuple[str, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)
_DEFAULT_LR = {"lora": 5e-4, "full": 3e-5}
_CHECKPOINTS = "checkpoints"
_ANSWERS_FILE = "tuning_validation_answers.jsonl"

Data = str | Path | Sequence[Example] | Sequence[TuningRow]


@dataclass
class TuneResult:
    """What :func:`tune` produced.

    Attributes:
        output: the folder holding the adapter (or full weights) and the card.
        card: the :class:`~langchain_hybrid.tuning.card.AdapterCard` written there.
        stopped: why training ended: ``"completed"``, ``"early_stopping"``,
            ``"time_limit"`` or ``"interrupted"`` (Ctrl-C).
        history: every validation pass (step, epoch, loss and per-class metrics).
    """

    output: Path
    card: AdapterCard
    stopped: str
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def best(self) -> dict[str, Any] | None:
        """The validation metrics of the saved weights (None when no validation ran)."""
        best = self.card.validation.get("best")
        return best if isinstance(best, dict) else None


def cpu_supports_bf16() -> bool:
    """Return True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16 on Linux).

    Elsewhere (or without ``/proc/cpuinfo``) returns False: emulated bfloat16 is slower
    than float32, so float32 is the better default there.

    Example:
        >>> isinstance(cpu_supports_bf16(), bool)
        True
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def lora_layer_indices(spec: int | float | Sequence[int] | str, n_layers: int) -> list[int] | None:
    """Return the decoder layers a LoRA adapter wraps (None: all of them).

    ``"all"``: every layer; an int n: the top n layers; a float in (0, 1]: that fraction of
    the layers, from the top; a sequence: those indices. Upper layers only make training
    faster: the backward pass stops at the lowest wrapped layer.

    Example:
        >>> lora_layer_indices(0.5, 30)[:3], lora_layer_indices(4, 30)
        ([15, 16, 17], [26, 27, 28, 29])
        >>> lora_layer_indices("all", 30) is None
        True
    """
    if isinstance(spec, str):
        if spec != "all":
            raise ValueError(f"lora_layers must be 'all', a count, a fraction or indices: {spec!r}")
        return None
    if isinstance(spec, bool):
        raise ValueError(f"lora_layers must be 'all', a count, a fraction or indices: {spec!r}")
    if isinstance(spec, float):
        if not 0 < spec <= 1:
            raise ValueError(f"a fraction of lora_layers must be in (0, 1], got {spec}")
        count = max(1, round(spec * n_layers))
    elif isinstance(spec, int):
        if not 1 <= spec <= n_layers:
            raise ValueError(f"lora_layers must be between 1 and {n_layers}, got {spec}")
        count = spec
    else:
        indices = sorted({int(i) for i in spec})
        if not indices or indices[0] < 0 or indices[-1] >= n_layers:
            raise ValueError(f"lora_layers indices must be within 0..{n_layers - 1}: {spec!r}")
        return None if len(indices) == n_layers else indices
    return None if count == n_layers else list(range(n_layers - count, n_layers))


def _rows(
    data: Data, *, answer: AnswerChoice, exclude: set[str], cloud_model: str | None
) -> tuple[list[TuningRow], str | None]:
    """Return the rows of ``data`` (a file or a sequence) and the file's path, if any."""
    if isinstance(data, (str, Path)):
        return load_rows(data, answer=answer, cloud_model=cloud_model, exclude_ids=exclude), str(
            data
        )
    items = list(data)
    if all(isinstance(r, TuningRow) for r in items):
        rows: list[TuningRow] = items  # type: ignore[assignment]
    elif all(isinstance(r, Example) for r in items):
        rows = rows_from_examples(items, answer=answer, cloud_model=cloud_model)  # type: ignore[arg-type]
    else:
        raise TypeError("data must be a JSON Lines path, Examples or TuningRows")
    return [r for r in rows if r.example.id not in exclude], None


def _data_info(rows: Sequence[TuningRow], path: str | None, grouping: str) -> dict[str, Any]:
    return {
        "name": Path(path).name if path else None,
        "path": str(Path(path).resolve()) if path else None,
        "sha256": data_fingerprint(path, rows) if rows else None,
        "rows": len(rows),
        "rows_by_class": class_counts(rows),
        "groups": len({r.group for r in rows}),
        "grouping": grouping,
    }


def _grouping(rows: Sequence[TuningRow]) -> str:
    kinds = sorted({r.group.split(":", 1)[0] for r in rows})
    names = {"title": "article title", "passage": "passage", "row": "row"}
    return "+".join(names[k] for k in kinds)


def _load_base(
    model: str | Path | None, tokenizer: str | Path | None, dtype: Any
) -> tuple[Any, Any, dict[str, Any]]:
    """Load the base model and tokenizer; return them with the card's ``base_model`` facts."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from langchain_hybrid import _models

    if model is None:
        gguf = _models.embedded_gguf_path()
        folder = _models.convert_gguf(gguf, _models.DEFAULT_MODEL_NAME)
        info: dict[str, Any] = {
            "name": _models.DEFAULT_MODEL_NAME,
            "source": "embedded",
            "fingerprint": _models.gguf_content_key(gguf),
            "fingerprint_kind": "gguf-content-key",
            "gguf_file": gguf.name,
        }
        source: str = str(folder)
    else:
        source = str(model)
        fingerprint, kind = model_fingerprint(source)
        if fingerprint is None:
            fingerprint, kind = _hub_fingerprint(source)
        info = {
            "name": Path(source).name if Path(source).is_dir() else source,
            "source": source,
            "fingerprint": fingerprint,
            "fingerprint_kind": kind,
        }
    loaded = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    tok = AutoTokenizer.from_pretrained(str(tokenizer) if tokenizer is not None else source)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return loaded, tok, info


def _hub_fingerprint(model_id: str) -> tuple[str | None, str | None]:
    """Fingerprint a hub model from its cached snapshot, without any network access."""
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(
            model_id, local_files_only=True, allow_patterns=["*.safetensors", "*.json"]
        )
    except Exception:  # noqa: BLE001 - not cached, not a hub id: no fingerprint
        return None, None
    return model_fingerprint(folder)


def _wrap_lora(
    model: Any,
    *,
    rank: int,
    alpha: int | None,
    dropout: float,
    layers: int | float | Sequence[int] | str,
    modules: Sequence[str] | str,
) -> tuple[Any, dict[str, Any]]:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as e:
        raise MissingDependencyError(
            "method='lora' needs peft: pip install 'peft>=0.13' (or method='full')"
        ) from e
    n_layers = int(model.config.num_hidden_layers)
    indices = lora_layer_indices(layers, n_layers)
    target: list[str] | str = modules if isinstance(modules, str) else list(modules)
    if not isinstance(target, str):
        present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        missing = [m for m in target if m not in present]
        if missing:
            raise ValueError(
                f"the model has no modules named {', '.join(missing)}; pass "
                "lora_modules='all-linear' or names of its linear layers"
            )
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha if alpha is not None else 2 * rank,
        lora_dropout=dropout,
        target_modules=target,
        layers_to_transform=indices,
        task_type="CAUSAL_LM",
    )
    wrapped = get_peft_model(model, config)
    facts = {
        "lora_rank": rank,
        "lora_alpha": config.lora_alpha,
        "lora_dropout": dropout,
        "lora_layers": indices if indices is not None else "all",
        "lora_modules": target,
    }
    return wrapped, facts


def _save_weights(
    model: Any, tokenizer: Any, output: Path, *, method: Method, base_name: str, adapter_dtype: str
) -> None:
    """Save the adapter (its weights in ``adapter_dtype``) or the full model and tokenizer."""
    if method == "full":
        model.save_pretrained(output)
        tokenizer.save_pretrained(output)
        return
    import torch
    from safetensors.torch import load_file, save_file

    config = model.peft_config["default"]
    config.base_model_name_or_path = base_name
    # The embeddings are never tuned: no lookup of the base model's config (a hub call).
    model.save_pretrained(output, save_embedding_layers=False)
    readme = output / "README.md"  # peft's empty model-card template
    if readme.is_file() and "More Information Needed" in readme.read_text(errors="replace"):
        readme.unlink()
    path = output / "adapter_model.safetensors"
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[
        adapter_dtype
    ]
    tensors = {k: v.to(dtype).contiguous() for k, v in load_file(str(path)).items()}
    save_file(tensors, str(path), metadata={"format": "pt"})


def _restore(model: Any, checkpoint: str, method: Method) -> None:
    """Load the weights of a saved checkpoint into ``model`` (the best one, after a stop)."""
    from safetensors.torch import load_file

    folder = Path(checkpoint)
    if method == "lora":
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(str(folder / "adapter_model.safetensors")))
        return
    state: dict[str, Any] = {}
    for path in sorted(folder.glob("*.safetensors")):
        state.update(load_file(str(path)))
    model.load_state_dict(state, strict=False)


def _command(arguments: dict[str, Any]) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, (str, int, float, bool)) or value is None:
            return value
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (list, tuple)):
            if len(value) > 20:
                return f"<{len(value)} items>"
            return [plain(v) for v in value]
        return f"<{type(value).__name__}>"

    return {"argv": list(sys.argv), "tune": {k: plain(v) for k, v in arguments.items()}}


def tune(
    data: Data,
    *,
    output: str | Path,
    model: str | Path | None = None,
    tokenizer: str | Path | None = None,
    validation: Data | None = None,
    validation_split: float = 0.1,
    method: Method = "lora",
    epochs: float = 1.0,
    max_minutes: float | None = None,
    seed: int = 0,
    learning_rate: float | None = None,
    batch_size: int = 8,
    micro_batch_size: int | None = None,
    lora_rank: int = 16,
    lora_alpha: int | None = None,
    lora_dropout: float = 0.05,
    lora_layers: int | float | Sequence[int] | str = 0.5,
    lora_modules: Sequence[str] | str = DEFAULT_LORA_MODULES,
    answer: AnswerChoice = "first",
    balance: Balance = "weight",
    answerable_weight: float = 1.0,
    cloud_model: str | None = None,
    exclude_ids: Sequence[str] = (),
    max_length: int | None = 2048,
    validation_size: int | None = 150,
    eval_every: int | None = None,
    patience: int | None = 3,
    max_new_tokens: int = 32,
    generation_batch_size: int = 16,
    warmup: float = 0.05,
    weight_decay: float = 0.0,
    scheduler: str = "linear",
    precision: Precision = "auto",
    device: str | None = None,
    adapter_dtype: Literal["float16", "bfloat16", "float32"] = "float16",
    validate_at_start: bool = False,
    keep_checkpoints: bool = False,
    progress: bool | None = None,
    on_validation: Callable[[dict[str, Any]], None] | None = None,
) -> TuneResult:
    """Tune ``model`` on ``data``; save the best validated weights and the card to ``output``.

    Args:
        data: training rows: a JSON Lines file (the shapes of
            :func:`~langchain_hybrid.evaluation.load_dataset`, plus rows taught a recorded
            cloud answer), or :class:`~langchain_hybrid.evaluation.records.Example` or
            :class:`~langchain_hybrid.tuning.data.TuningRow` objects.
        output: the folder for the adapter (``adapter_config.json`` and
            ``adapter_model.safetensors``; with ``method="full"`` the model and tokenizer)
            and ``tuning_card.json``.
        model: a local folder or Hugging Face model id; None: the embedded default.
        tokenizer: its tokenizer, when it is not beside the model.
        validation: validation rows; None: hold out ``validation_split`` of ``data`` by
            group (article title, else passage, else row).
        validation_split: the share of ``data`` held out when ``validation`` is None.
        method: ``"lora"`` (an adapter of a few MB) or ``"full"`` (every weight but the
            embeddings; for small models).
        epochs: passes over the training rows (fractions allowed).
        max_minutes: stop (after validating and saving the current step) before this many
            minutes have passed since the call; None: no limit.
        seed: seeds weights, order and the validation subset: the same call trains the same.
        learning_rate: peak learning rate; None: 5e-4 for LoRA, 3e-5 for full.
        batch_size: rows per optimizer step.
        micro_batch_size: rows per forward pass (gradients accumulate up to
            ``batch_size``); None: ``batch_size``.
        lora_rank: the adapter's rank.
        lora_alpha: its scale (None: twice the rank).
        lora_dropout: its dropout.
        lora_layers: the decoder layers wrapped: ``"all"``, the top n, a fraction from
            the top (default: the upper half, which halves the backward pass), or indices.
        lora_modules: the linear layers wrapped (default: attention and MLP projections).
        answer: the accepted answer an answerable row is taught: ``"first"`` or
            ``"shortest"``.
        balance: ``"weight"`` (loss weights giving both classes the same share),
            ``"oversample"`` (repeat the smaller class) or ``"none"``.
        answerable_weight: extra weight (or oversampling ratio) of answerable rows.
        cloud_model: which recorded cloud answer to teach on rows without labels.
        exclude_ids: row ids never trained or validated on (e.g. examples shipped
            elsewhere).
        max_length: rows longer than this many tokens are skipped (never truncated).
        validation_size: rows of the validation set used (a fixed, class-stratified
            random subset); None: all.
        eval_every: validate every this many optimizer steps; None: four times an epoch.
        patience: stop after this many validations without a better per-class score;
            None: never stop early.
        max_new_tokens: the answer limit when validating by generation.
        generation_batch_size: prompts generated at once when validating.
        warmup: the share of the steps spent warming the learning rate up.
        weight_decay: the optimizer's weight decay.
        scheduler: the learning-rate schedule (``transformers`` names: "linear", "cosine").
        precision: ``"bf16"`` (bfloat16 autocast; with LoRA the frozen base is held in
            bfloat16), ``"fp32"``, or ``"auto"``: bf16 on a GPU that has it or a CPU with
            AVX512-BF16/AMX, else fp32.
        device: ``"cpu"``, ``"cuda"``...; None: the GPU when torch sees one.
        adapter_dtype: the dtype of the saved adapter weights (float16 halves the file).
        validate_at_start: also validate the untuned model first (recorded, never chosen).
        keep_checkpoints: keep ``output/checkpoints`` (else removed at the end).
        progress: show a progress bar (None: only when stderr is a terminal).
        on_validation: called with each validation's metrics.

    Returns a :class:`TuneResult`; its card is saved as ``output/tuning_card.json``. The
    saved weights are those of the best validation (``balanced_accuracy``: the mean of the
    answerable accuracy and the unanswerable decline rate), whether training completed,
    stopped early, ran out of time or was interrupted with Ctrl-C.
    """
    arguments = {k: v for k, v in locals().items() if k != "on_validation"}
    started_wall = time.time()
    started = time.perf_counter()
    if method not in ("lora", "full"):
        raise ValueError(f"method must be 'lora' or 'full', got {method!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    micro = micro_batch_size or batch_size
    if micro < 1 or batch_size % micro:
        raise ValueError(f"micro_batch_size ({micro}) must divide batch_size ({batch_size})")
    if epochs <= 0:
        raise ValueError(f"epochs must be > 0, got {epochs}")
    if balance not in ("weight", "oversample", "none"):
        raise ValueError(f"balance must be 'weight', 'oversample' or 'none', got {balance!r}")

    quiet_import_noise()
    import torch
    from transformers import EarlyStoppingCallback, TrainingArguments, set_seed

    from langchain_hybrid.tuning.encoding import AnswerCollator, encode_rows
    from langchain_hybrid.tuning.trainer import (
        AnswerTrainer,
        GenerationValidator,
        MetricsHook,
        ProgressBar,
        StepTimer,
        TimeLimit,
        ValidateLastStep,
    )

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    checkpoints = output / _CHECKPOINTS
    shutil.rmtree(checkpoints, ignore_errors=True)

    # ---- data
    excluded = set(exclude_ids)
    rows, train_path = _rows(data, answer=answer, exclude=excluded, cloud_model=cloud_model)
    if validation is None:
        train_rows, val_rows = split_by_group(rows, validation_split, seed=seed)
        val_path = train_path
    else:
        train_rows = rows
        val_rows, val_path = _rows(
            validation, answer=answer, exclude=excluded, cloud_model=cloud_model
        )
    overlap = {r.example.id for r in train_rows} & {r.example.id for r in val_rows}
    if overlap:
        raise ValueError(
            f"{len(overlap)} rows are in both the training and validation data "
            f"(e.g. {sorted(overlap)[0]!r}); validate on other rows"
        )
    shared_groups = {r.group for r in train_rows} & {r.group for r in val_rows}
    if shared_groups:
        logger.warning(
            "%d groups (articles or passages) are in both training and validation data: "
            "the validation figures will be optimistic",
            len(shared_groups),
        )
    chosen = validation_subset(val_rows, validation_size, seed=seed)
    val_used = [val_rows[i] for i in chosen]

    # ---- device and precision
    set_seed(seed)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    on_gpu = device.startswith("cuda")
    if precision == "auto":
        bf16 = torch.cuda.is_bf16_supported() if on_gpu else cpu_supports_bf16()
    else:
        bf16 = precision == "bf16"
    # LoRA keeps the frozen base in bfloat16 (no per-step casts); full tuning keeps float32
    # master weights under autocast.
    load_dtype = torch.bfloat16 if bf16 and method == "lora" else torch.float32

    # ---- model
    base, tok, base_info = _load_base(model, tokenizer, load_dtype)
    base.config.use_cache = False
    facts: dict[str, Any] = {}
    if method == "lora":
        net, facts = _wrap_lora(
            base,
            rank=lora_rank,
            alpha=lora_alpha,
            dropout=lora_dropout,
            layers=lora_layers,
            modules=lora_modules,
        )
    else:
        net = base
        embeddings = net.get_input_embeddings()
        if embeddings is not None:
            embeddings.weight.requires_grad_(False)
    net.to(device)
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)

    # ---- features
    if balance == "oversample":
        train_rows_used = oversample(train_rows, seed=seed, answerable_weight=answerable_weight)
        weights: dict[bool, float] = {True: 1.0, False: 1.0}
    elif balance == "weight":
        train_rows_used = list(train_rows)
        weights = class_weights(train_rows, answerable_weight=answerable_weight)
    else:
        train_rows_used = list(train_rows)
        weights = {True: 1.0, False: 1.0}
    train_encoded, train_skipped = encode_rows(
        train_rows_used, tok, weights=weights, max_length=max_length
    )
    val_encoded, val_skipped = encode_rows(val_used, tok, max_length=max_length)
    if not train_encoded:
        raise ValueError("no training rows left (all longer than max_length?)")
    if not val_encoded:
        raise ValueError("no validation rows left (all longer than max_length?)")
    val_kept = [val_used[e.index] for e in val_encoded]
    val_prompts = [e.input_ids[: e.prompt_length] for e in val_encoded]

    steps_per_epoch = math.ceil(len(train_encoded) / batch_size)
    max_steps = max(1, math.ceil(epochs * steps_per_epoch))
    every = eval_every or max(1, steps_per_epoch // 4)
    lr = learning_rate if learning_rate is not None else _DEFAULT_LR[method]

    hyper = {
        "learning_rate": lr,
        "batch_size": batch_size,
        "micro_batch_size": micro,
        "epochs": epochs,
        "max_steps": max_steps,
        "seed": seed,
        "answer": answer,
        "balance": balance,
        "answerable_weight": answerable_weight,
        "class_weights": {"answerable": weights[True], "unanswerable": weights[False]},
        "max_length": max_length,
        "warmup": warmup,
        "weight_decay": weight_decay,
        "scheduler": scheduler,
        "eval_every": every,
        "patience": patience,
        "select_on": "balanced_accuracy",
        "max_new_tokens": max_new_tokens,
        "precision": "bf16" if bf16 else "fp32",
        "base_dtype": str(load_dtype).replace("torch.", ""),
        "trainable_parameters": trainable,
        "max_minutes": max_minutes,
        **facts,
    }
    logger.info(
        "tuning %s (%s) on %d rows (%d validation, %d used), %d steps, %s",
        base_info["name"],
        method,
        len(train_encoded),
        len(val_rows),
        len(val_encoded),
        max_steps,
        hyper["precision"],
    )

    # ---- trainer
    args = TrainingArguments(
        output_dir=str(checkpoints),
        per_device_train_batch_size=micro,
        per_device_eval_batch_size=micro,
        gradient_accumulation_steps=batch_size // micro,
        max_steps=max_steps,
        learning_rate=lr,
        lr_scheduler_type=scheduler,
        warmup_steps=warmup,
        weight_decay=weight_decay,
        max_grad_norm=1.0,
        bf16=bf16,
        use_cpu=not on_gpu,
        seed=seed,
        data_seed=seed,
        eval_strategy="steps",
        eval_steps=every,
        save_strategy="steps",
        save_steps=every,
        save_only_model=True,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="eval_balanced_accuracy",
        greater_is_better=True,
        eval_on_start=validate_at_start,
        logging_steps=max(1, min(every, 10)),
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        label_names=["labels"],
        prediction_loss_only=True,
        train_sampling_strategy="group_by_length",
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
    )
    validator = GenerationValidator(
        val_kept,
        val_prompts,
        tok,
        max_new_tokens=max_new_tokens,
        batch_size=generation_batch_size,
        autocast_dtype=torch.bfloat16 if bf16 else None,
    )
    limit = TimeLimit(max_minutes * 60 if max_minutes is not None else None, started=started)
    timer = StepTimer()
    callbacks: list[Any] = [ProgressBar(sys.stderr.isatty() if progress is None else progress)]
    callbacks += [limit, timer, ValidateLastStep()]
    early = EarlyStoppingCallback(early_stopping_patience=patience) if patience else None
    if early is not None:
        callbacks.append(early)
    trainer = AnswerTrainer(
        model=net,
        args=args,
        train_dataset=[e.as_feature() for e in train_encoded],
        eval_dataset=[e.as_feature() for e in val_encoded],
        data_collator=AnswerCollator(pad_id=int(tok.pad_token_id)),
        callbacks=callbacks,
        validator=validator,
    )
    limit.trainer_ref = trainer
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if on_validation is not None:
        trainer.add_callback(MetricsHook(on_validation))

    # ---- train
    stopped = "completed"
    try:
        trainer.train()
    except KeyboardInterrupt:
        stopped = "interrupted"
        logger.warning("interrupted: saving the best validated weights so far")
        best = trainer.state.best_model_checkpoint
        if best is not None and Path(best).is_dir():
            _restore(net, best, method)
    if stopped == "completed":
        if limit.hit:
            stopped = "time_limit"
        elif early is not None and early.early_stopping_patience_counter >= (patience or 0):
            stopped = "early_stopping"
    train_seconds = timer.seconds

    # ---- save
    base_name = base_info["name"] if model is None else str(model)
    _save_weights(net, tok, output, method=method, base_name=base_name, adapter_dtype=adapter_dtype)
    history = _history(trainer.state.log_history)
    best_step = _best_step(trainer.state.best_model_checkpoint)
    best_metrics = next((h for h in history if h["step"] == best_step), None)
    if best_step is not None and best_step in validator.answers:
        _write_answers(output / _ANSWERS_FILE, val_kept, validator.answers[best_step])
    if not keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)

    seen = trainer.examples_seen
    card = AdapterCard(
        base_model=base_info,
        method=method,
        hyperparameters=hyper,
        data={
            "train": _data_info(train_rows, train_path, _grouping(train_rows)),
            "validation": {
                **_data_info(val_rows, val_path, _grouping(val_rows)),
                "generation_rows": len(val_encoded),
                "generation_rows_by_class": class_counts(val_kept),
            },
            "train_rows_after_balancing": len(train_rows_used),
            "excluded_ids": len(excluded),
            "skipped_too_long": {"train": len(train_skipped), "validation": len(val_skipped)},
        },
        training={
            "steps": trainer.state.global_step,
            "epochs_done": round(seen / max(1, len(train_encoded)), 4),
            "examples_seen": seen,
            "stopped": stopped,
            "best_step": best_step,
            "wall_seconds": round(time.perf_counter() - started, 1),
            "train_seconds": round(train_seconds, 1),
            "validation_seconds": round(sum(trainer.eval_seconds), 1),
            "seconds_per_example": round(train_seconds / seen, 4) if seen else None,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started_wall)) + "Z",
            "loss_history": [
                [h["step"], round(h["loss"], 4)] for h in trainer.state.log_history if "loss" in h
            ],
        },
        validation={"select_on": "balanced_accuracy", "best": best_metrics, "history": history},
        machine=machine_info(device, "bf16" if bf16 else "fp32"),
        command=_command(arguments),
    )
    card.save(output)
    return TuneResult(output=output, card=card, stopped=stopped, history=history)


def _history(log_history: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for entry in log_history:
        if "eval_loss" not in entry:
            continue
        row: dict[str, Any] = {"step": entry.get("step"), "epoch": entry.get("epoch")}
        for key, value in entry.items():
            if key.startswith("eval_") and not key.endswith(("_per_second", "_runtime")):
                row[key[len("eval_") :]] = value
        out.append(row)
    return out


def _best_step(checkpoint: str | None) -> int | None:
    if not checkpoint:
        return None
    try:
        return int(Path(checkpoint).name.rsplit("-", 1)[-1])
    except ValueError:
        return None


def _write_answers(path: Path, rows: Sequence[TuningRow], answers: Sequence[str]) -> None:
    import json

    with open(path, "w", encoding="utf-8") as f:
        for row, text in zip(rows, answers, strict=True):
            record = {
                "id": row.example.id,
                "answerable": row.answerable,
                "target": row.target,
                "answer": text,
            }
            f.write(json.dumps(record) + "\n")
