"""Faster-engine settings of ChatTransformers: checked at construction, before any weights load."""

import importlib.util
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from langchain_hybrid import ChatTransformers, _models
from langchain_hybrid.errors import EngineSettingError, MissingDependencyError


def test_4bit_on_cpu_says_to_use_a_gpu_or_int8() -> None:
    with pytest.raises(EngineSettingError, match="needs an NVIDIA GPU.*quantization='int8'"):
        ChatTransformers(quantization="4bit", device="cpu")


def test_4bit_without_bitsandbytes_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, package=None: None if name == "bitsandbytes" else real(name, package),
    )
    with pytest.raises(MissingDependencyError, match=r"pip install 'langchain-hybrid\[gpu\]'"):
        ChatTransformers(quantization="4bit", device="cuda")


def test_4bit_without_cuda_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, package=None: object() if name == "bitsandbytes" else real(name, package),
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(EngineSettingError, match="torch sees none"):
        ChatTransformers(quantization="4bit", device="auto")


def _without_torchao(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, package=None: None if name == "torchao" else real(name, package),
    )


def test_int8_on_a_gpu_without_torchao_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _without_torchao(monkeypatch)
    with pytest.raises(MissingDependencyError, match=r"langchain-hybrid\[int8\]"):
        ChatTransformers(quantization="int8", device="cuda")


def test_int8_on_the_cpu_needs_only_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    _without_torchao(monkeypatch)
    _models.check_quantization("int8", "cpu")  # torch's own int8 kernel, no extra


def test_int8_on_the_cpu_without_the_kernel_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    monkeypatch.delattr(torch, "_weight_int8pack_mm")
    with pytest.raises(EngineSettingError, match="Upgrade torch.*bfloat16"):
        ChatTransformers(quantization="int8")


def test_unknown_quantization_names_the_choices() -> None:
    with pytest.raises(ValidationError, match="quantization"):
        ChatTransformers(quantization="3bit")  # type: ignore[arg-type]
    with pytest.raises(EngineSettingError, match="'int8'.*'dynamic-int8'.*'4bit'"):
        _models.check_quantization("int4", "cpu")


def test_quantization_is_part_of_what_is_loaded() -> None:
    # Models with other weights are loaded (and cached in the process) apart.
    assert _models.ModelSpec(quantization="int8") != _models.ModelSpec()


def test_dynamic_int8_off_the_cpu_says_what_to_use_instead() -> None:
    with pytest.raises(EngineSettingError, match="CPU only.*'int8' or '4bit'"):
        ChatTransformers(quantization="dynamic-int8", device="cuda")


def test_dynamic_int8_on_auto_with_a_gpu_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(EngineSettingError, match="CPU only.*'auto'"):
        ChatTransformers(quantization="dynamic-int8", device="auto")


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_dynamic_int8_needs_float32_weights(dtype: str) -> None:
    with pytest.raises(EngineSettingError, match=f"float32 weights, but dtype is '{dtype}'"):
        ChatTransformers(quantization="dynamic-int8", dtype=dtype)


def test_dynamic_int8_without_quantized_kernels_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.backends, "quantized", SimpleNamespace(engine="none"))
    with pytest.raises(EngineSettingError, match="quantized CPU kernels.*bfloat16"):
        _models.check_quantization("dynamic-int8", "cpu")


def test_dynamic_int8_is_accepted_on_cpu_with_float32() -> None:
    for dtype in (None, "float32", "auto"):
        _models.check_quantization("dynamic-int8", "cpu", dtype)
    assert _models.ModelSpec(quantization="dynamic-int8") != _models.ModelSpec(quantization="int8")
