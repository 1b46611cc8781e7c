"""Experiment configs and the entry points of the `csp` command."""
