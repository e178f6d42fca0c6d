"""Chat models: the local transformers tier and the hybrid router."""

from langchain_hybrid.chat_models.hybrid import ChatHybrid
from langchain_hybrid.chat_models.transformers import ChatTransformers

__all__ = ["ChatHybrid", "ChatTransformers"]
