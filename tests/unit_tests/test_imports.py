import langchain_hybrid
from langchain_hybrid import __all__

EXPECTED_ALL = [
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


def test_all_imports() -> None:
    assert sorted(EXPECTED_ALL) == sorted(__all__)
    for name in __all__:
        assert hasattr(langchain_hybrid, name)


def test_version_is_a_string() -> None:
    assert isinstance(langchain_hybrid.__version__, str)
    assert langchain_hybrid.__version__.count(".") >= 2
