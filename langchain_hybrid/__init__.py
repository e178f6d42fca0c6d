"""langchain-hybrid: local-first LangChain chat models that escalate to the cloud when unsure."""

from langchain_hybrid.chat_models import ChatTransformers

__version__ = "0.1.0"

__all__ = ["ChatTransformers", "__version__"]
