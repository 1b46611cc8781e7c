"""The sparse runtime: a pruned RNN-T whose weight products skip the zeros where that pays
(`convert`), and the speed and size of any pruned model's Linears against its dense twin
(`any_model`)."""

from lightning_modules.runtime.any_model import (
    NotSpedUp,
    SpeedReport,
    build_sparse_model,
    measure_saved,
    measure_speed,
)

__all__ = ["NotSpedUp", "SpeedReport", "build_sparse_model", "measure_saved", "measure_speed"]
