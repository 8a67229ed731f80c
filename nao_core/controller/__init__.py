"""The NAO controller: encoder-predictor-decoder, its training and the embedding-space step."""

from nao_core.controller.fit import FitReport, fit_controller, normalize_scores, pairwise_accuracy
from nao_core.controller.improve import Proposal, improve
from nao_core.controller.model import Controller

__all__ = [
    "Controller",
    "FitReport",
    "Proposal",
    "fit_controller",
    "improve",
    "normalize_scores",
    "pairwise_accuracy",
]
