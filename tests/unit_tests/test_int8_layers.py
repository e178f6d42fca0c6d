"""int8 weight-only layers on the CPU (quantization="int8"): torch's packed int8 kernel."""

import pytest
import torch

from langchain_hybrid._int8 import Int8WeightLinear, kernel_available, quantize_linears

pytestmark = pytest.mark.skipif(not kernel_available(), reason="torch has no int8 kernel")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("bias", [False, True])
def test_int8_layer_matches_the_float_layer(dtype: torch.dtype, bias: bool) -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 24, bias=bias).to(dtype)
    q = Int8WeightLinear.from_linear(layer)
    x = torch.randn(2, 3, 64, dtype=dtype)  # batch, positions, features
    out, ref = q(x), layer(x)
    assert out.shape == ref.shape and out.dtype == dtype
    # One absmax scale per output channel: within about 1% of the float layer's range.
    assert (out.float() - ref.float()).abs().max() <= 0.02 * ref.float().abs().max()


def test_weights_are_int8_with_one_scale_per_output_channel() -> None:
    layer = torch.nn.Linear(16, 4, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.arange(64, dtype=torch.float32).reshape(4, 16) - 32)
    q = Int8WeightLinear.from_linear(layer)
    assert q.weight.dtype == torch.int8 and q.scales.shape == (4,)
    # The largest weight of each row maps to +-127.
    assert q.weight.abs().amax(dim=1).tolist() == [127, 127, 127, 127]
    assert q.weight.numel() * q.weight.element_size() == layer.weight.numel()


def test_only_layers_the_kernel_can_read_are_swapped() -> None:
    # The kernel crashes the process on widths that are not a multiple of 8: such layers
    # keep their float weights.
    net = torch.nn.Sequential(torch.nn.Linear(8, 12), torch.nn.Linear(12, 5), torch.nn.Linear(5, 8))
    assert quantize_linears(net) == 1
    assert isinstance(net[0], Int8WeightLinear)
    assert type(net[1]) is torch.nn.Linear and type(net[2]) is torch.nn.Linear
    assert net(torch.randn(3, 8)).shape == (3, 8)
    with pytest.raises(ValueError, match="multiple of 8"):
        Int8WeightLinear(torch.zeros(4, 12, dtype=torch.int8), torch.ones(4), None)


def test_a_tied_output_head_gets_its_own_int8_copy() -> None:
    embed = torch.nn.Embedding(32, 16)
    head = torch.nn.Linear(16, 32, bias=False)
    head.weight = embed.weight  # tied, as in SmolLM2
    model = torch.nn.ModuleDict({"embed": embed, "head": head})
    before = embed.weight.detach().clone()
    quantize_linears(model)
    assert isinstance(model["head"], Int8WeightLinear)
    assert torch.equal(model["embed"].weight, before)  # the table keeps its float weights
    tokens = torch.tensor([[1, 2, 3]])
    logits = model["head"](model["embed"](tokens))
    assert logits.shape == (1, 3, 32)
