"""langchain-hybrid: local-first LangChain chat models that escalate to the cloud when unsure.

Example:
    >>> from langchain_hybrid import ChatHybrid, ChatTransformers
    >>> from langchain_openai import ChatOpenAI
    >>> cloud = ChatOpenAI(model="gpt-4o")  # needs OPENAI_API_KEY  # doctest: +SKIP
    >>> llm = ChatHybrid(local=ChatTransformers(), cloud=cloud)  # doctest: +SKIP
    >>> answer = llm.invoke("What is the capital of France?")  # doctest: +SKIP
    >>> answer.response_metadata["routing"]["tier"]  # doctest: +SKIP
    'local'
"""

from langchain_hybrid.chat_models import ChatHybrid, ChatTransformers
from langchain_hybrid.costs import ModelPrice, PriceTable
from langchain_hybrid.errors import (
    BothTiersFailedError,
    ChatTemplateMissingError,
    CloudRequestError,
    CloudStreamBrokenError,
    ContextWindowExceededError,
    InvalidCallOptionError,
    InvalidMessagesError,
    LangChainHybridError,
    LocalToolCallUnavailableError,
    MissingDependencyError,
    ModelNotAvailableError,
    PolicyError,
    RoutedCallError,
    UnsupportedCallOptionError,
)
from langchain_hybrid.routing import (
    CombinedScorer,
    Confidence,
    ConfidenceScorer,
    EarlyEscalation,
    ForceCloudRule,
    ForceLocalRule,
    HedgeDetector,
    MarginScorer,
    MaxLocalContextRule,
    MeanLogprobScorer,
    MinLogprobScorer,
    PrivacyRule,
    QuantileLogprobScorer,
    RouteDecision,
    RoutingPolicy,
    Verdict,
    routing_steps,
)
from langchain_hybrid.routing.gate import ConfidenceGate
from langchain_hybrid.routing.guards import Budget, CircuitBreaker
from langchain_hybrid.routing.stats import RoutingStatsHandler

__version__ = "0.1.0"

__all__ = [
    "BothTiersFailedError",
    "Budget",
    "ChatHybrid",
    "ChatTemplateMissingError",
    "ChatTransformers",
    "CircuitBreaker",
    "CloudRequestError",
    "CloudStreamBrokenError",
    "CombinedScorer",
    "Confidence",
    "ConfidenceGate",
    "ConfidenceScorer",
    "ContextWindowExceededError",
    "EarlyEscalation",
    "ForceCloudRule",
    "ForceLocalRule",
    "HedgeDetector",
    "InvalidCallOptionError",
    "InvalidMessagesError",
    "LangChainHybridError",
    "LocalToolCallUnavailableError",
    "MarginScorer",
    "MaxLocalContextRule",
    "MeanLogprobScorer",
    "MinLogprobScorer",
    "MissingDependencyError",
    "ModelNotAvailableError",
    "ModelPrice",
    "PolicyError",
    "PriceTable",
    "PrivacyRule",
    "QuantileLogprobScorer",
    "RouteDecision",
    "RoutedCallError",
    "RoutingPolicy",
    "RoutingStatsHandler",
    "UnsupportedCallOptionError",
    "Verdict",
    "__version__",
    "routing_steps",
]
