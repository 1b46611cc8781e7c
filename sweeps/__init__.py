"""Optuna studies over CSP's and the baselines' settings (built with the sweeps issue)."""
