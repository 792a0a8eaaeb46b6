"""Signal analysis: a confidence, a plain-words reasoning and a decision (enter | wait | skip).

`RuleAnalyzer` scores a setup from its candles with no network; `LLMAnalyzer` asks an
OpenAI-compatible chat-completions API and falls back to the built-in analysis on any failure;
`AnalysisPool` bounds concurrency, drops the oldest queued request when full and rate-limits
the model; `SignalReview` takes one signal from pending to executed or cancelled.
"""

from aitrader.analysis.llm import LLMAnalyzer, fallen_back
from aitrader.analysis.pool import DROPPED_REASON, AnalysisPool, TokenBucket
from aitrader.analysis.review import SignalReview
from aitrader.analysis.rules import Readings, RuleAnalyzer, read_indicators
from aitrader.analysis.types import (
    ENTER_AT,
    WAIT_AT,
    Analysis,
    AnalysisRequest,
    Analyzer,
    Decision,
    decision_for,
)

__all__ = [
    "DROPPED_REASON",
    "ENTER_AT",
    "WAIT_AT",
    "Analysis",
    "AnalysisPool",
    "AnalysisRequest",
    "Analyzer",
    "Decision",
    "LLMAnalyzer",
    "Readings",
    "RuleAnalyzer",
    "SignalReview",
    "TokenBucket",
    "decision_for",
    "fallen_back",
    "read_indicators",
]
