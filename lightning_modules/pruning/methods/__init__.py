"""The pruning methods compared in this project, by the names configs and tables use."""

from lightning_modules.pruning.methods.csp import CompressedSensingPruning
from lightning_modules.pruning.methods.magnitude import (
    GradualMagnitudePruning,
    OneShotMagnitudePruning,
)
from lightning_modules.pruning.methods.model_pruning import LightningModelPruning
from lightning_modules.pruning.methods.narang import NarangPruning
from lightning_modules.pruning.methods.random import RandomPruning

METHODS = {
    "csp": CompressedSensingPruning,
    "gmp": GradualMagnitudePruning,
    "narang": NarangPruning,
    "oneshot": OneShotMagnitudePruning,
    "random": RandomPruning,
    "model_pruning": LightningModelPruning,
}

__all__ = [
    "METHODS",
    "CompressedSensingPruning",
    "GradualMagnitudePruning",
    "LightningModelPruning",
    "NarangPruning",
    "OneShotMagnitudePruning",
    "RandomPruning",
]
