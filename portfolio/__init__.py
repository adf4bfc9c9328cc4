"""Portfolios (seed 001 §6): the performance matrix, greedy reduced portfolios, the versioned artifact, recommending.

Layer: imports ``metafeatures`` and ``finetune`` only, never ``offline_search`` or ``service``.
"""

from portfolio.artifact import (
    PORTFOLIO_FORMAT_VERSION,
    LoadedPortfolio,
    Portfolio,
    PortfolioEntry,
    build_portfolio,
    check_portfolio,
    load_portfolio,
    save_portfolio,
)
from portfolio.candidates import Candidate, Cost
from portfolio.performance import CellCurve, PerformanceData
from portfolio.policies import POLICIES, NeighborParams, SelectionSettings
from portfolio.recommender import (
    Neighbor,
    NoCandidateError,
    Recommendation,
    Recommender,
    SelectionRequest,
    recommend_dataset,
)
from portfolio.selection import (
    PerformanceMatrix,
    PortfolioStep,
    choose_reduced,
    greedy_reduced_portfolio,
    portfolio_score,
)

__all__ = [
    "POLICIES",
    "PORTFOLIO_FORMAT_VERSION",
    "Candidate",
    "CellCurve",
    "Cost",
    "NeighborParams",
    "NoCandidateError",
    "PerformanceData",
    "SelectionRequest",
    "SelectionSettings",
    "recommend_dataset",
    "LoadedPortfolio",
    "Neighbor",
    "PerformanceMatrix",
    "Portfolio",
    "PortfolioEntry",
    "PortfolioStep",
    "Recommendation",
    "Recommender",
    "build_portfolio",
    "check_portfolio",
    "choose_reduced",
    "greedy_reduced_portfolio",
    "load_portfolio",
    "portfolio_score",
    "save_portfolio",
]
