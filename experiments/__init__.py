"""Experiments: configs, training runs, the comparison grid and the run records (`records`).

Depends on `lightning_modules` only; `sweeps`, `analysis` and the `csp` command (`cli`) build on it.
"""
