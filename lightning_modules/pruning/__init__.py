"""Sparse pruning as Lightning callbacks, for any LightningModule: the methods, their schedule,
and the functions that save, read and audit what they pruned.

    from lightning_modules.pruning import CSP, SparsitySchedule, Wanda

    schedule = SparsitySchedule(final=0.8, start=100, end=600, every=20)
    trainer = Trainer(callbacks=[CSP(schedule)], max_steps=1000)

Shared mechanics live in the modules (targets, schedules, masks, accounting, the
`SparsePruning` base); the methods in `methods` (every module there registers its class in
`METHODS`, the names configs use). docs/your-model.md walks through a model of your own.
"""

from lightning_modules.pruning.audit import audit
from lightning_modules.pruning.base import PruningTargetWarning, SparsePruning
from lightning_modules.pruning.calibration import CalibrationError
from lightning_modules.pruning.calibration_source import default_forward
from lightning_modules.pruning.data_aware import DataAwarePruning
from lightning_modules.pruning.export import export_packed
from lightning_modules.pruning.methods import METHODS
from lightning_modules.pruning.methods.csp import CompressedSensingPruning as CSP
from lightning_modules.pruning.methods.imp import IterativeMagnitudePruning as IMP
from lightning_modules.pruning.methods.magnitude import GradualMagnitudePruning as GMP
from lightning_modules.pruning.methods.magnitude import OneShotMagnitudePruning as OneShot
from lightning_modules.pruning.methods.model_pruning import LightningModelPruning
from lightning_modules.pruning.methods.movement import MovementPruning as Movement
from lightning_modules.pruning.methods.narang import NarangPruning as Narang
from lightning_modules.pruning.methods.random import RandomPruning as Random
from lightning_modules.pruning.methods.sparsegpt import SparseGPTPruning as SparseGPT
from lightning_modules.pruning.methods.wanda import WandaPruning as Wanda
from lightning_modules.pruning.options import SharedOptions
from lightning_modules.pruning.registry import Role, register
from lightning_modules.pruning.saved import SavedWeights, read_saved
from lightning_modules.pruning.schedules import SparsitySchedule

__all__ = [
    "CSP",
    "GMP",
    "IMP",
    "METHODS",
    "CalibrationError",
    "DataAwarePruning",
    "LightningModelPruning",
    "Movement",
    "Narang",
    "OneShot",
    "PruningTargetWarning",
    "Random",
    "Role",
    "SavedWeights",
    "SharedOptions",
    "SparseGPT",
    "SparsePruning",
    "SparsitySchedule",
    "Wanda",
    "audit",
    "default_forward",
    "export_packed",
    "read_saved",
    "register",
]
