"""int8 weight-only linear layers on the CPU, through torch's own packed int8 kernel.

``quantization="int8"`` on the CPU swaps every ``nn.Linear`` whose input width is a
multiple of 8 (the output head too) for an :class:`Int8WeightLinear`: the weight
stored as int8 with one scale per output channel (symmetric, ``absmax / 127``), the
activations left in the model's dtype, and the product computed by
``torch._weight_int8pack_mm``, the fused CPU kernel torch ships for weight-only int8
(the one gpt-fast and torchao's CPU paths call). Decoding a small model on the CPU is
bound by reading the weights, so a quarter of float32's bytes decodes several times
faster; torchao's weight-only int8, by contrast, dequantises before a float matmul on
the CPU and decodes slower than float32.

The kernel reads inputs whose width is a multiple of 8 (it crashes the process on
others), so layers of other widths keep their float weights. Activations in bfloat16
are what makes it fast: with float32 activations it is no faster than float32 weights.

Example:
    >>> import torch
    >>> from langchain_hybrid._int8 import Int8WeightLinear
    >>> layer = torch.nn.Linear(16, 4, bias=False).to(torch.bfloat16)
    >>> q = Int8WeightLinear.from_linear(layer)
    >>> x = torch.randn(2, 16, dtype=torch.bfloat16)
    >>> bool(torch.allclose(q(x).float(), layer(x).float(), atol=0.1))
    True
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["Int8WeightLinear", "KERNEL_WIDTH_MULTIPLE", "kernel_available", "quantize_linears"]

KERNEL_WIDTH_MULTIPLE = 8
"""The kernel reads inputs whose width (``in_features``) is a multiple of this."""


def kernel_available() -> bool:
    """Whether this torch build has the packed int8 weight-only kernel.

    Example:
        >>> kernel_available()
        True
    """
    return hasattr(torch, "_weight_int8pack_mm")


class Int8WeightLinear(torch.nn.Module):
    """A linear layer with int8 weights (one scale per output channel) and float activations."""

    weight: torch.Tensor
    scales: torch.Tensor

    def __init__(self, weight: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        if weight.dtype != torch.int8 or weight.dim() != 2:
            raise ValueError("weight must be a 2-D int8 tensor (out_features, in_features)")
        if weight.shape[1] % KERNEL_WIDTH_MULTIPLE:
            raise ValueError(
                f"in_features must be a multiple of {KERNEL_WIDTH_MULTIPLE} for the int8 "
                f"kernel, not {weight.shape[1]}: keep this layer in float."
            )
        self.in_features = int(weight.shape[1])
        self.out_features = int(weight.shape[0])
        self.register_buffer("weight", weight.contiguous())
        self.register_buffer("scales", scales)
        self.bias = None if bias is None else torch.nn.Parameter(bias, requires_grad=False)

    @classmethod
    def from_linear(cls, layer: torch.nn.Linear) -> Int8WeightLinear:
        """Quantise ``layer``'s weight to int8 with one absmax scale per output channel."""
        w = layer.weight.detach().float()
        scales = w.abs().amax(dim=1).clamp(min=1e-8) / 127.0
        q = torch.round(w / scales[:, None]).clamp(-127, 127).to(torch.int8)
        bias = None if layer.bias is None else layer.bias.detach()
        return cls(q, scales.to(layer.weight.dtype), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ dequantised(weight).T + bias``, in ``x``'s dtype."""
        flat = x.reshape(-1, self.in_features).contiguous()
        scales = self.scales if self.scales.dtype == x.dtype else self.scales.to(x.dtype)
        out = torch._weight_int8pack_mm(flat, self.weight, scales)
        if self.bias is not None:
            out = out + self.bias.to(out.dtype)
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        """Shown by ``print(model)``."""
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weights"


def quantize_linears(model: Any) -> int:
    """Swap, in place, every ``nn.Linear`` the kernel can read for an :class:`Int8WeightLinear`.

    Returns how many layers were swapped. Tied weights (an output head sharing the
    embedding table) are untied: the head gets its own int8 copy, the embedding table
    keeps its float weights.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 3))
        >>> quantize_linears(net)
        2
    """
    targets = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, torch.nn.Linear) and child.in_features % KERNEL_WIDTH_MULTIPLE == 0
    ]
    for parent, name, child in targets:
        setattr(parent, name, Int8WeightLinear.from_linear(child))
    return len(targets)
