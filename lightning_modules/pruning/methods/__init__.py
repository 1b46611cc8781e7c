"""The pruning methods compared in this project: every module of this package is imported, and
each registers its method classes (`lightning_modules.pruning.registry.register`).

`METHODS` maps the names configs and tables use to the classes.
"""

import importlib
import pkgutil

from lightning_modules.pruning.registry import METHODS

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["METHODS"]
