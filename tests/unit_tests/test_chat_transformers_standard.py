"""LangChain's standard unit tests for ChatTransformers."""

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
