"""CSP: compressed-sensing-based sparse pruning as a Lightning callback."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch
from typing_extensions import Unpack, override

from lightning_modules.pruning.base import SparsePruning
from lightning_modules.pruning.calibration import CalibrationError
from lightning_modules.pruning.calibration_source import CalibrationForward, CalibrationSource
from lightning_modules.pruning.options import SharedOptions, integer, number
from lightning_modules.pruning.registry import Role, register
from lightning_modules.pruning.schedules import SparsitySchedule, kept_count
from lightning_modules.pruning.sensing import (
    RECOVERY_KINDS,
    SENSING_KINDS,
    Projection,
    RecoveryKind,
    SensingKind,
    from_blocks,
    hard_threshold,
    measurement_count,
    normal_equations,
    recover,
    sensing_matrix,
    to_blocks,
)
from lightning_modules.pruning.sparsity_patterns import as_rows
from lightning_modules.pruning.spread_calibration import SpreadCalibration

DEFAULT_ITERATIONS = {"gaussian": 10, "rademacher": 10, "identity": 0, "activation": 3}
"""Recovery iterations by sensing kind, chosen by cost: with Φ = I the warm start H_k(W) is
the solution; an activation-sensing iteration costs three products with each weight's Gram
(d × d) instead of with a 64 × 64 one, and on the small model at random initialization its
mean output error at s = 0.5 falls 0.352 → 0.184 → 0.151 → 0.122 after 0, 1, 3 and 10
iterations (docs/csp.md): 3 keep most of the gain at a third of the cost."""
PREVIEW_ITERATIONS = 2
"""Recovery iterations of the preview that follows a cut: it starts from the cut's recovery
(already close: the next support lies inside it), so a full recovery's cost twice per update
buys little."""


@dataclass(frozen=True)
class Sensed:
    """One tensor's compressed-sensing step: Ŵ, its support and the compression error e."""

    reconstruction: torch.Tensor
    support: torch.Tensor
    error: float


@register
class CompressedSensingPruning(SparsePruning):
    """CSP, after Zhen, Nguyen, Chang, Mouchtaris, Rastrow, "Sparsification via compressed
    sensing for automatic speech recognition", arXiv 2102.04932 (2021).

    Sparse pruning as a dual problem, sparsity inducing plus compression-error reduction, with
    the compressed-sensing process inside training. The paper gives the idea; the algorithm
    below is this project's definition of it (docs/csp.md):

    - at each schedule update every tensor is cut into blocks, measured with a seeded sensing
      matrix Φ and recovered with k non-zeros by IHT (or ISTA); the support of the recovery is
      **which** weights survive, the relative compression error e = ‖W − Ŵ‖/‖W‖ decides
      **when**: the tensor is cut only if e ≤ `error_threshold`, and at the latest at the end;
    - with `activation` sensing Φ is the layer's own inputs, observed on the training batches
      of the steps just before each sensing, the measurements its pre-activations,
      Ŵ the k-sparse weights that reproduce them and e the relative output error ‖A(W − Ŵ)‖/‖AW‖;
    - with a structured `pattern` (N:M, blocks) the hard thresholding of the recovery
      projects onto the pattern, so the support, and so the mask, keeps it;
    - between updates two gradient terms push the weights the next cut removes toward zero
      (the direction of ‖W ⊙ (1 − M_next)‖₁) and the kept weights toward their reconstruction
      (the direction of ‖W − Ŵ‖²), each rescaled to λ × the norm of the task gradient on its
      tensor at that step: λ = 1 pulls as hard as the loss, whatever the tensor's size.

    Args:
        sparsity_weight: λ_s, the sparsity-inducing term's gradient norm over the task's.
        reconstruction_weight: λ_r, the compression-error term's gradient norm over the task's.
        sensing: `gaussian`, `rademacher`, `identity` (no compression: Ŵ = H_k(W)) or
            `activation` (data-driven: Φ is the layer's inputs).
        sensing_ratio: ρ = m / n, measurements per block entry, in (0, 1] (random Φ).
        block_size: n, entries per sensed block (random Φ and identity).
        recovery: `iht` or `ista`.
        recovery_iterations: iterations of the recovery, warm-started at H_k(W); by default
            `DEFAULT_ITERATIONS` of the sensing kind (identity needs none).
        error_threshold: ε of the "when" rule; `math.inf` cuts on schedule.
        regularization_start: first step of the gradient terms (default: the schedule start).
        calibration_batches: training batches activation sensing measures on, per sensing.
    """

    name = "csp"
    title = "CSP"
    code_options = ("calibration_data", "calibration_forward")
    """Options only Python code passes (objects), never a config file."""
    role = Role.PROPOSED
    citation = (
        'Zhen, Nguyen, Chang, Mouchtaris, Rastrow, "Sparsification via compressed sensing for '
        'automatic speech recognition", arXiv 2102.04932 (2021)'
    )
    color = "#d62728"
    about = (
        "From the paper (its abstract and introduction, all we have of it): sparse pruning "
        "decides when and which weights are forced to zero; CSP treats it as a dual problem of "
        "inducing sparsity and reducing the compression error, running the classic "
        "compressed-sensing process inside training of an RNN-T; it claims to beat the sparse "
        "pruning of Zhu & Gupta (2017) and Narang et al. (2017).",
        "This project's own definition (not the paper's): at each schedule update every tensor "
        "is measured block-wise with a seeded sensing matrix (Gaussian or Rademacher; the "
        "layer's own inputs with activation sensing; the identity) and recovered with k "
        "non-zeros by IHT or ISTA; the support of the recovery is the new mask (which), a "
        "tensor is cut only when its relative compression error is at most ε (when), and two "
        "gradient terms pull the weights the next cut removes toward zero (λs) and the kept "
        "ones toward the recovery (λr). The tuned entry these tables run was chosen by an "
        "equal-budget study: identity sensing, where the recovery is each tensor's magnitude "
        "top-k, so the method differs from magnitude pruning by its “when” rule and its two "
        "terms. docs/csp.md in the repository writes every choice out. The paper's own numbers "
        "are not available, so these tables check the direction of its claim only.",
    )
    """What a report says about the method before its tables (the proposed method's)."""
    option_phrases = {
        ("sensing", "identity"): "identity sensing (no compressed sensing)",
        ("sensing", "gaussian"): "Gaussian sensing",
        ("sensing", "rademacher"): "Rademacher sensing (±1/√m Φ)",
        ("sensing", "activation"): "activation sensing (the layer's inputs as Φ)",
        ("sparsity_weight", 0): "no sparsity-inducing term (λs = 0)",
        ("reconstruction_weight", 0): "no compression-error term (λr = 0)",
        ("error_threshold", math.inf): "no “when” rule (ε = ∞)",
    }
    """How an ablation variant's options read in a table row."""

    def __init__(
        self,
        schedule: SparsitySchedule,
        *,
        sparsity_weight: float = 1.0,
        reconstruction_weight: float = 1.0,
        sensing: SensingKind = "gaussian",
        sensing_ratio: float = 0.5,
        block_size: int = 64,
        recovery: RecoveryKind = "iht",
        recovery_iterations: int | None = None,
        error_threshold: float = 0.5,
        regularization_start: int | None = None,
        calibration_batches: int = 2,
        calibration_data: Iterable[Any] | None = None,
        calibration_forward: CalibrationForward | None = None,
        **shared: Unpack[SharedOptions],
    ) -> None:
        super().__init__(schedule, **shared)
        self.sparsity_weight = number("sparsity_weight", sparsity_weight)
        self.reconstruction_weight = number("reconstruction_weight", reconstruction_weight)
        if sensing not in SENSING_KINDS:
            raise ValueError(f"sensing must be one of {SENSING_KINDS}, got {sensing!r}")
        if not isinstance(sensing_ratio, int | float) or not 0.0 < sensing_ratio <= 1.0:
            raise ValueError(f"sensing_ratio must lie in (0, 1], got {sensing_ratio!r}")
        integer("block_size", block_size, minimum=1)
        if recovery not in RECOVERY_KINDS:
            raise ValueError(f"recovery must be one of {RECOVERY_KINDS}, got {recovery!r}")
        if recovery_iterations is None:
            recovery_iterations = DEFAULT_ITERATIONS[sensing]
        integer("recovery_iterations", recovery_iterations)
        if not isinstance(error_threshold, int | float) or not error_threshold > 0:
            raise ValueError(f"error_threshold must be > 0 (inf allowed), got {error_threshold!r}")
        if regularization_start is None:
            regularization_start = schedule.start
        if not isinstance(regularization_start, int) or not (
            0 <= regularization_start <= schedule.last_update
        ):
            raise ValueError(
                f"regularization_start must be an integer in [0, {schedule.last_update}], "
                f"got {regularization_start!r}"
            )
        self.sensing = sensing
        self.sensing_ratio = 1.0 if sensing == "identity" else float(sensing_ratio)
        self.block_size = block_size
        self.recovery = recovery
        # with Φ = I the warm start H_k(W) is already the exact solution
        self.recovery_iterations = 0 if sensing == "identity" else recovery_iterations
        self.error_threshold = float(error_threshold)
        self.regularization_start = regularization_start
        self.errors: dict[str, float] = {}
        self.waiting: list[str] = []
        self.next_masks: dict[str, torch.Tensor] = {}
        self.reconstructions: dict[str, torch.Tensor] = {}
        source = CalibrationSource(calibration_data, calibration_forward)
        self.calibration = SpreadCalibration(calibration_batches, self.seed, source)
        self._hessians: dict[str, torch.Tensor] = {}
        self._hessians_step: int | None = None
        self._phi: dict[str, torch.Tensor] = {}
        self._pending_values: dict[str, torch.Tensor] = {}
        self._cut: dict[str, Sensed] = {}
        """This update's recoveries, the warm start of the preview that follows it."""

    # ---- the compressed-sensing step ----------------------------------------------------

    def phi(self, name: str, device: torch.device) -> torch.Tensor:
        """Φ of tensor `name` (cached; regenerated from the seed, never saved)."""
        if name not in self._phi:
            rows = measurement_count(self.block_size, self.sensing_ratio, self.sensing)
            self._phi[name] = sensing_matrix(self.sensing, rows, self.block_size, self.seed, name)
        return self._phi[name].to(device)

    def _split(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """The rows the recovery works on: sensing blocks, or for activation sensing the
        weight's (outputs × inputs) rows, grouped like its calibration statistics."""
        if self.sensing != "activation":
            return to_blocks(tensor, self.block_size)
        rows = as_rows(tensor)
        groups = self._hessians[name].shape[0]
        return rows.reshape(groups, rows.shape[0] // groups, rows.shape[1])

    def _join(self, values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        if self.sensing != "activation":
            return from_blocks(values, like)
        return values.reshape(like.shape)

    def sense(
        self,
        name: str,
        k: int,
        start: torch.Tensor | None = None,
        iterations: int | None = None,
        measure_error: bool = True,
    ) -> Sensed:
        """Measure tensor `name` and recover it with `k` non-zeros among its kept entries,
        warm-started at H_k(`start`) (default: the weights themselves). Without
        `measure_error` the error is left unmeasured (nan): a preview does not use it."""
        weight = self.weight(name).detach().float()
        values = self._split(name, weight)
        initial = values if start is None else self._split(name, start.float())
        allowed = self._split(name, self.masks[name])  # block padding is never allowed
        if self.sensing == "activation":  # Φ = the layer's inputs: Y Φ = W AᵀA
            gram = self._hessians[name]
            correlation = values @ gram
        else:
            phi = self.phi(name, weight.device)
            correlation, gram = normal_equations(values @ phi.T, phi)
        if iterations is None:
            iterations = self.recovery_iterations
        estimate, support = recover(
            correlation, gram, k, allowed, initial, iterations, self.recovery,
            self.projection(name, weight),
        )  # fmt: skip
        if not measure_error:
            error = math.nan
        elif self.sensing == "activation":  # relative output error ‖A(W − Ŵ)‖ / ‖AW‖
            difference = values - estimate
            output = (correlation * values).sum()
            lost = ((correlation - estimate @ gram) * difference).sum()
            error = float((lost / output).clamp_min(0).sqrt()) if output > 0 else 0.0
        else:
            error = self.compression_error(weight, self._join(estimate, weight))
        return Sensed(self._join(estimate, weight), self._join(support, weight), error)

    def projection(self, name: str, like: torch.Tensor) -> Projection:
        """H_k of the recovery: plain top-k, or the run's pattern on the tensor's own shape."""
        if not self.pattern.structured:
            return hard_threshold

        def project(values: torch.Tensor, k: int, allowed: torch.Tensor) -> torch.Tensor:
            kept = self.pattern.select(self._join(values.abs(), like), k, self._join(allowed, like))
            return self._split(name, kept)

        return project

    @staticmethod
    def compression_error(weight: torch.Tensor, reconstruction: torch.Tensor) -> float:
        """e = ‖W − Ŵ‖_F / ‖W‖_F (0 for an all-zero tensor)."""
        weight = weight.detach().float()
        norm = weight.norm()
        return float((weight - reconstruction).norm() / norm) if norm > 0 else 0.0

    def _calibrate(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        """Activation sensing: complete the statistics of the sensing at `step`."""
        if self.sensing == "activation" and self._hessians_step != step:
            self.calibration.complete(trainer, pl_module, self.tensors, step)
            self._hessians = self.calibration.hessians(trainer, step)
            missing = [t.name for t in self.tensors if t.name not in self._hessians]
            if missing:
                raise CalibrationError(
                    f"[csp] activation sensing never saw the inputs of {missing[:5]}: the "
                    f"training forward does not run them; leave them dense with "
                    f"exclude={missing[:5]!r}"
                )
            self._hessians_step = step

    @override
    def prepare_update(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        self._calibrate(trainer, pl_module, step)

    @override
    def compute_masks(self, step: int, kept: Mapping[str, int]) -> dict[str, torch.Tensor]:
        final_cut = step >= self.schedule.last_update
        masks, self.errors, self.waiting = {}, {}, []
        self._cut = {}
        for name, k in kept.items():
            sensed = self.sense(name, k)
            if k < int(torch.count_nonzero(self.masks[name])):  # a real recovery, not W itself
                self._cut[name] = sensed
            self.errors[name] = sensed.error
            if sensed.error <= self.error_threshold or final_cut:
                masks[name] = sensed.support
            else:
                self.waiting.append(name)
        return masks

    # ---- the dual training terms ----------------------------------------------------------

    def _next_update(self, step: int) -> int | None:
        """The schedule step whose cut the gradient terms prepare after `step`."""
        schedule = self.schedule
        if step < schedule.start:
            return schedule.start
        if step >= schedule.last_update:
            return None
        return min(
            schedule.start + ((step - schedule.start) // schedule.every + 1) * schedule.every,
            schedule.end,
        )

    def _preview_target(self, step: int) -> float:
        """The sparsity of the next cut that prunes more than today's target: a cubic or
        linear schedule's update at t0 is at the initial sparsity and cuts nothing."""
        current = self.schedule.target(step)
        update = self._next_update(step)
        while update is not None and self.schedule.target(update) <= current:
            update = self._next_update(update)
        return current if update is None else self.schedule.target(update)

    def _regularizing(self, step: int) -> bool:
        return self.regularization_start <= step < self.schedule.last_update and (
            self.sparsity_weight > 0 or self.reconstruction_weight > 0
        )

    def _preview_due(self, step: int) -> bool:
        """Whether M_next and Ŵ are refreshed at `step`: after every update, and every
        `every` steps while regularizing before the first update."""
        if not self._regularizing(step):
            return False
        if step == self.last_update_step or not self.next_masks:
            return True
        schedule = self.schedule
        return step < schedule.start and (step - self.regularization_start) % schedule.every == 0

    def _next_sensing(self, step: int) -> int | None:
        """The first step ≥ `step` that senses: a schedule update or a preview refresh."""
        schedule = self.schedule
        update = self._next_update(step - 1)  # the first schedule update at or after `step`
        previews = range(self.regularization_start, schedule.start, schedule.every)
        upcoming = [p for p in previews if p >= step and self._regularizing(p)]
        candidates = [c for c in (update, *upcoming[:1]) if c is not None]
        return min(candidates, default=None)

    @override
    def before_step(self, pl_module: pl.LightningModule, step: int) -> None:
        """Refresh the preview of the next cut when due; for activation sensing, watch this
        step's training forward if the next sensing's statistics need it."""
        trainer = pl_module.trainer
        if self._preview_due(step):
            self._calibrate(trainer, pl_module, step)
            target = self._preview_target(step)
            cut = self._cut if step == self.last_update_step else {}
            with torch.no_grad():
                for tensor in self.tensors:
                    k = kept_count(tensor.numel, target)
                    if tensor.name in cut:  # refine the cut's recovery: it holds W's measurements
                        start = cut[tensor.name].reconstruction
                        iterations = min(PREVIEW_ITERATIONS, self.recovery_iterations)
                        sensed = self.sense(tensor.name, k, start, iterations, False)
                    else:
                        sensed = self.sense(tensor.name, k, measure_error=False)
                    self.next_masks[tensor.name] = sensed.support
                    self.reconstructions[tensor.name] = sensed.reconstruction.to(
                        tensor.parameter.dtype
                    )
        upcoming = self._next_sensing(step + 1)
        if self.sensing == "activation" and upcoming is not None:
            self.calibration.observe(pl_module, self.tensors, step, upcoming)

    @override
    def on_before_backward(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor
    ) -> None:
        self.calibration.stop_observing()  # the forward it watched is over

    @override
    def adjust_gradients(self, pl_module: pl.LightningModule, step: int) -> None:
        """Add the two terms' gradients in place, each rescaled to λ × the norm of the task
        gradient on its tensor; on the trainer's logging steps, log what they did."""
        if not self._regularizing(step) or not self.next_masks:
            return
        trainer = pl_module.trainer
        log_now = step % max(trainer.log_every_n_steps, 1) == 0
        logged: dict[str, list[float]] = {}
        scales: list[tuple[str, str, torch.Tensor, torch.Tensor]] = []
        with torch.no_grad():
            for tensor in self.tensors:
                weight, name = tensor.parameter, tensor.name
                if weight.grad is None:
                    continue
                task = weight.grad.clone() if log_now else None
                task_norm = weight.grad.norm()
                terms = []
                if self.sparsity_weight:
                    doomed = ~self.next_masks[name]
                    terms.append(("sparsity", self.sparsity_weight, weight.sign().mul_(doomed)))
                if self.reconstruction_weight:
                    difference = weight - self.reconstructions[name]
                    terms.append(("reconstruction", self.reconstruction_weight, difference))
                for label, strength, direction in terms:
                    norm = direction.norm()
                    scale = strength * task_norm / norm.clamp_min(1e-30)
                    scales.append((label, name, scale, task_norm))
                    direction.mul_(scale)
                    weight.grad.add_(direction)
                    if log_now:
                        ratio = float(direction.norm() / task_norm.clamp_min(1e-30))
                        cosine = float(
                            (direction * task).sum()
                            / (direction.norm() * task_norm).clamp_min(1e-30)
                        )
                        logged[f"csp/grad_ratio/{label}/{name}"] = [ratio]
                        logged.setdefault(f"csp/grad_cosine/{label}", []).append(cosine)
                if log_now:
                    for label, value in self._term_values(weight, name).items():
                        logged.setdefault(f"csp/{label}_term", []).append(value)
        self._check_finite(scales)
        if log_now:
            pl_module.log_dict(
                {key: sum(values) / len(values) for key, values in logged.items()},
                on_step=True,
                on_epoch=False,
            )

    def _check_finite(self, scales: list[tuple[str, str, torch.Tensor, torch.Tensor]]) -> None:
        """Refuse a term whose gradient overflowed while the task's is finite: λ is too large
        for the float type (a non-finite task gradient is the loss's divergence, not ours)."""
        if not scales:
            return
        values = torch.stack([torch.stack([scale, task]) for _, _, scale, task in scales])
        bad = torch.isfinite(values[:, 1]) & ~torch.isfinite(values[:, 0])
        if bool(bad.any()):
            label, name, _, task = scales[int(bad.nonzero()[0])]
            option = f"{label}_weight"
            strength = getattr(self, option)
            raise FloatingPointError(
                f"[csp] the {label} term's gradient on {name} overflows: {option} {strength:g} × "
                f"the task gradient's norm {float(task):.3g} is not finite; lower {option}"
            )

    def _term_values(self, weight: torch.Tensor, name: str) -> dict[str, float]:
        """What each term penalizes, relative to the tensor: the share of its L1 mass in the
        weights the next cut removes, and the squared relative error ‖W − Ŵ‖² / ‖W‖²."""
        values = {}
        if self.sparsity_weight:
            total = weight.abs().sum().clamp_min(1e-30)
            values["sparsity"] = float((weight.abs() * ~self.next_masks[name]).sum() / total)
        if self.reconstruction_weight:
            total = weight.square().sum().clamp_min(1e-30)
            difference = weight - self.reconstructions[name]
            values["reconstruction"] = float(difference.square().sum() / total)
        return values

    # ---- logging and state --------------------------------------------------------------

    @override
    def method_metrics(self) -> dict[str, float]:
        metrics = {f"error/{name}": error for name, error in self.errors.items()}
        if self.errors:
            metrics["error_mean"] = sum(self.errors.values()) / len(self.errors)
        metrics["waiting_tensors"] = float(len(self.waiting))
        if self.sensing == "activation":
            metrics.update(self.calibration.metrics())
        return metrics

    @override
    def method_state(self) -> dict[str, Any]:
        return {
            "next_masks": {name: mask.cpu() for name, mask in self.next_masks.items()},
            "reconstruction_values": {
                name: self.reconstructions[name][mask].cpu()
                for name, mask in self.next_masks.items()
            },
            "errors": dict(self.errors),
            "waiting": list(self.waiting),
            "calibration": self.calibration.state_dict(),
        }

    @override
    def load_method_state(self, state: Mapping[str, Any]) -> None:
        self.errors = dict(state["errors"])
        self.waiting = list(state["waiting"])
        self.next_masks = dict(state["next_masks"])
        self._pending_values = dict(state["reconstruction_values"])
        if "calibration" in state:
            self.calibration.load_state_dict(state["calibration"])

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if self.sensing == "activation":
            self.calibration.source.origin(trainer, pl_module)  # fails here, before any step

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_fit_start(trainer, pl_module)
        for name, values in self._pending_values.items():
            weight = self.weight(name)
            mask = self.next_masks[name].to(weight.device)
            self.next_masks[name] = mask
            reconstruction = torch.zeros_like(weight)
            reconstruction[mask] = values.to(weight.device, weight.dtype)
            self.reconstructions[name] = reconstruction
        self._pending_values = {}
