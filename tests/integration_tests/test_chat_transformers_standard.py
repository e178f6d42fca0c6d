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
        # Short answers keep the suite fast on 2 CPU cores; 48 tokens hold a tool call or a
        # short JSON answer (a text answer's behaviour does not depend on length).
        return {"max_tokens": 48}

    # Tool calling and structured output (has_tool_calling, has_tool_choice and
    # has_structured_output follow from bind_tools / with_structured_output being
    # implemented): required calls and JSON answers are constrained to their schema.
    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return False
