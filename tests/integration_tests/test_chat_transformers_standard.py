"""LangChain's standard tests for ChatTransformers on the real embedded model.

Both suites are here: a ``ChatTransformers`` loads its weights when it is
constructed, so even the standard *unit* suite (construction, parameters,
serialisation, ``bind_tools``) needs them.
"""

from typing import Any

from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_hybrid import ChatTransformers


class TestChatTransformersStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatTransformers]:
        return ChatTransformers

    @property
    def chat_model_params(self) -> dict:
        return {"seed": 0}

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        # Another local model would have to be loaded into memory per call.
        return False


class TestChatTransformersIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatTransformers]:
        return ChatTransformers

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # Short answers keep the suite fast on 2 CPU cores; behaviour does not depend on length.
        return {"max_tokens": 24}

    # Declared honestly: SmolLM2-135M has no tool-calling or JSON ability worth exposing yet.
    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def supports_json_mode(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return False
