"""Optuna studies over CSP's and the baselines' settings: specs, storage, workers and
early stopping."""
