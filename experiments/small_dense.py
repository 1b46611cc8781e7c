"""Zhu & Gupta's control: a dense model with as many weights as a pruned one has non-zeros.

"To prune, or not to prune" (arXiv 1710.01878, 2017) asks whether a large sparse model beats a
small dense one of the same non-zero count, trained with the same budget. The small model here
is the dense config with every width (encoder, prediction network, joiner, embeddings,
Conformer feed-forward) scaled by one factor, the factor chosen so its parameter count is
closest to the pruned model's non-zeros: all its non-prunable parameters plus
N − ⌊s·N⌋ of each prunable tensor (the engine's count).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from experiments.config import ExperimentConfig, TokenizerSection
from lightning_modules.asr.module import build_ctc_head
from lightning_modules.asr.presets import RNNTConfig
from lightning_modules.asr.rnnt import build_rnnt
from lightning_modules.data.tokenizer import CharTokenizer
from lightning_modules.pruning.registry import Role, register
from lightning_modules.pruning.schedules import kept_count
from lightning_modules.pruning.targets import discover_tensors

WIDTHS = ("encoder_hidden", "predictor_embed", "predictor_hidden", "joiner_dim", "conformer_ffn")
"""The fields scaled together (each at least 8)."""


def vocab_size(tokenizer: TokenizerSection) -> int:
    """Output units of the recognizer a tokenizer section builds (the blank included)."""
    if tokenizer.kind == "char":
        return CharTokenizer().vocab_size
    return tokenizer.vocab_size + 1


def network(config: RNNTConfig, vocab_size: int) -> nn.Module:
    """The recognizer's parameters (transcriber, predictor, joiner, CTC head), on the meta
    device: counted, never computed with."""
    with torch.device("meta"):
        parts = nn.ModuleDict({"rnnt": build_rnnt(config, vocab_size)})
        if config.ctc_weight > 0:
            parts["ctc_head"] = build_ctc_head(config, vocab_size)
    return parts


def parameter_count(config: RNNTConfig, vocab_size: int) -> int:
    return sum(p.numel() for p in network(config, vocab_size).parameters())


def nonzero_count(config: RNNTConfig, vocab_size: int, sparsity: float) -> int:
    """Non-zeros of the model pruned to `sparsity` over the default prunable set."""
    parts = network(config, vocab_size)
    pruned = sum(t.numel - kept_count(t.numel, sparsity) for t in discover_tensors(parts))
    return sum(p.numel() for p in parts.parameters()) - pruned


def scaled(config: RNNTConfig, factor: float) -> RNNTConfig:
    """`config` with every width of `WIDTHS` times `factor` (the Conformer width a multiple of
    its heads)."""
    widths = {name: max(8, round(getattr(config, name) * factor)) for name in WIDTHS}
    if config.encoder == "conformer":
        heads = config.conformer_heads
        widths["encoder_hidden"] = max(heads, round(widths["encoder_hidden"] / heads) * heads)
    return config.model_copy(update=widths)


def matched_small_dense(
    config: RNNTConfig, vocab_size: int, sparsity: float
) -> tuple[RNNTConfig, int]:
    """The scaled config whose parameter count is closest to the non-zeros of `config` pruned
    to `sparsity`, and that non-zero count."""
    if not 0.0 < sparsity < 1.0:
        raise ValueError(f"sparsity must lie in (0, 1), got {sparsity!r}")
    target = nonzero_count(config, vocab_size, sparsity)
    low, high = 0.0, 1.0  # parameter counts grow with the factor
    for _ in range(30):
        middle = (low + high) / 2
        if parameter_count(scaled(config, middle), vocab_size) < target:
            low = middle
        else:
            high = middle
    candidates = [scaled(config, low), scaled(config, high)]
    best = min(candidates, key=lambda c: abs(parameter_count(c, vocab_size) - target))
    return best, target


@register
class SmallDense:
    """The control as a registered role: a grid with `small_dense: true` holds one such cell
    per target sparsity and seed (`changes`); tables, legends and figures show it like a
    method, from these facts."""

    name = "small_dense"  # the label of its cells, their folders and its table row
    title = "Small dense (Zhu & Gupta)"
    role = Role.CONTROL
    citation = (
        'Zhu & Gupta, "To prune, or not to prune: exploring the efficacy of pruning for model '
        "compression\", arXiv 1710.01878 (2017): a dense model as large as the pruned one's "
        "non-zeros, trained from scratch for the dense plus the pruning steps"
    )
    color = "#7f7f7f"

    @staticmethod
    def changes(dense: ExperimentConfig, pruning_steps: int, sparsity: float) -> dict[str, Any]:
        """What the control changes in the dense config at `sparsity`: every width matched to
        the pruned model's non-zeros, and the dense plus the pruning steps."""
        model = dense.model.resolve()
        matched, _ = matched_small_dense(model, vocab_size(dense.tokenizer), sparsity)
        return {
            "model": {"overrides": {name: getattr(matched, name) for name in WIDTHS}},
            "trainer": {"max_steps": dense.trainer.max_steps + pruning_steps},
        }
