"""The NAO controller: encoder-predictor-decoder, its training and the embedding-space step."""

from nao_core.controller.fit import FitReport, fit_controller, normalize_scores, pairwise_accuracy
from nao_core.controller.improve import Proposal, improve
from nao_core.controller.model import Controller
from nao_core.controller.semi import fit_with_pseudo_labels

__all__ = [
    "Controller",
    "FitReport",
    "Proposal",
    "fit_controller",
    "fit_with_pseudo_labels",
    "improve",
    "normalize_scores",
    "pairwise_accuracy",
]
