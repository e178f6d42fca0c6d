"""Invalid ChatTransformers parameters are rejected before any weights load."""

import pytest

from langchain_hybrid import ChatTransformers


@pytest.mark.parametrize(
    "params",
    [{"temperature": -1}, {"max_tokens": 0}, {"top_p": 1.5}, {"top_logprobs": 21}, {"timeout": 0}],
)
def test_invalid_parameters(params: dict) -> None:
    with pytest.raises(ValueError):
        ChatTransformers(**params)
