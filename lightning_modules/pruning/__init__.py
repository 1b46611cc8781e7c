"""Sparse pruning as Lightning callbacks: shared mechanics (targets, schedules, masks, size
accounting, the `SparsePruning` base) and the methods built on them (`methods`)."""
