"""The budget control: the dense model trained on for a cell's budget, without pruning.

A pruning cell of budget B trains B more steps than the dense model it starts from. Where the
dense model is still improving, a longer budget credits pruning with what is only more
training; the same dense weights trained on for the same B steps, with the pruning runs'
optimizer and learning rate (the grid's `prune` section), is what each pruned cell of that
budget is measured against (relative WER per budget). A grid with a budget axis holds one
such cell per budget and seed (`experiments.reproduce.Grid`).
"""

from __future__ import annotations

from lightning_modules.pruning.registry import Role, register


@register
class DenseControl:
    """The control as a registered role: tables, legends and figures show it like a method,
    from these facts; its cells are `dense_control-s0-seedSEED-bSTEPS`."""

    name = "dense_control"  # the label of its cells, their folders and its table row
    title = "Dense, trained on"
    role = Role.CONTROL
    citation = (
        "the dense model trained on for the cell's budget with the pruning runs' optimizer "
        "and learning rate and no pruning: what the extra steps alone give"
    )
    color = "#000000"
