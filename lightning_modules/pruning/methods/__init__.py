"""The pruning methods compared in this project: every module of this package is imported, and
each registers its method classes (`lightning_modules.pruning.registry.register`).

`METHODS` maps the names configs and tables use to the classes. The paper's own baselines
register first (the table lists each role in registration order), then the rest by module name.
"""

import importlib
import pkgutil

from lightning_modules.pruning.registry import METHODS

_PAPER_BASELINES = ["magnitude", "narang"]

for _module in _PAPER_BASELINES + sorted(
    module.name for module in pkgutil.iter_modules(__path__) if module.name not in _PAPER_BASELINES
):
    importlib.import_module(f"{__name__}.{_module}")

__all__ = ["METHODS"]
