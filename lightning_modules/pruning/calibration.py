"""Calibration statistics for data-aware pruning (Wanda, SparseGPT): the second moment XᵀX of
what each prunable tensor multiplies, collected by forward hooks on a fixed, seeded set of
training batches.

A prunable weight W (rows × d) computes W·x for some input x ∈ ℝᵈ. Which x that is depends on
the module: the input of an `nn.Linear`; the unfolded patches of an `nn.Conv1d/2d` (one matrix
per group, since each group of rows sees its own channels); the layer input (`weight_ih_l*`)
or the previous hidden state (`weight_hh_l*`) of an `nn.LSTM`; the query of a self-attention
in-projection. `InputStatistics` holds Σ x xᵀ and the count of x for each.
"""

from __future__ import annotations

import dataclasses
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from lightning_modules.pruning.base import SparsePruning
from lightning_modules.pruning.schedules import SparsitySchedule
from lightning_modules.pruning.targets import PrunableTensor


@dataclass
class InputStatistics:
    """Σ x xᵀ over the inputs x of one weight, per group of rows: (groups, d, d) in float64."""

    groups: int
    dim: int
    gram: torch.Tensor = field(init=False)
    count: int = 0

    def __post_init__(self) -> None:
        self.gram = torch.zeros(self.groups, self.dim, self.dim, dtype=torch.float64)

    def add(self, inputs: torch.Tensor) -> None:
        """Add inputs of shape (groups, n, d): one batch's product in float32 where the inputs
        are (a few thousand rows: exact enough), the running sum in float64 on the CPU."""
        inputs = inputs.detach().float()
        self.gram += (inputs.transpose(1, 2) @ inputs).to("cpu", torch.float64)
        self.count += inputs.shape[1]

    def hessian(self) -> torch.Tensor:
        """XᵀX / n per group: the Hessian of the layer's squared output error (up to 2)."""
        return self.gram / max(self.count, 1)

    def input_norms(self) -> torch.Tensor:
        """‖X_j‖₂ of each input feature j, per group: (groups, d)."""
        return self.gram.diagonal(dim1=1, dim2=2).clamp(min=0).sqrt()


def _flatten_rows(input: torch.Tensor) -> torch.Tensor:
    return input.reshape(1, -1, input.shape[-1])


def _conv_patches(module: nn.Conv1d | nn.Conv2d, input: torch.Tensor) -> torch.Tensor:
    """The patches a convolution multiplies, (groups, n, C_in/groups · kernel), ordered like
    `weight.view(C_out, -1)`."""
    if module.padding_mode != "zeros":
        raise ValueError(f"calibration of a {module.padding_mode!r}-padded conv is not built")
    padding: Any = module.padding
    if padding == "valid":
        padding = (0,) * len(module.kernel_size)
    elif padding == "same":
        padding = tuple(
            d * (k - 1) // 2 for d, k in zip(module.dilation, module.kernel_size, strict=True)
        )
    if isinstance(module, nn.Conv1d):
        input = input.unsqueeze(2)
        kernel, dilation = (1, *module.kernel_size), (1, *module.dilation)
        padding, stride = (0, *padding), (1, *module.stride)
    else:
        kernel, dilation, stride = module.kernel_size, module.dilation, module.stride
    patches = nn.functional.unfold(
        input, kernel, dilation=dilation, padding=padding, stride=stride
    )  # (B, C·k, L)
    batch, width, length = patches.shape
    groups = module.groups
    patches = patches.view(batch, groups, width // groups, length)
    return patches.permute(1, 0, 3, 2).reshape(groups, batch * length, width // groups)


def _batch_first(module: nn.LSTM, sequence: Any) -> torch.Tensor:
    if isinstance(sequence, PackedSequence):
        sequence, _ = pad_packed_sequence(sequence, batch_first=module.batch_first)
    if not module.batch_first:
        sequence = sequence.transpose(0, 1)
    return sequence.unsqueeze(0) if sequence.dim() == 2 else sequence


def _lstm_inputs(
    module: nn.LSTM, input: Any, hx: Any, output: Any = None
) -> dict[str, torch.Tensor]:
    """Per recurrent weight of `module`: the vectors it multiplies. A one-layer, one-way LSTM
    shows them in its `output` (the hidden states, one step late); otherwise the layers run
    again one at a time (nn.LSTM does not expose the inputs of its inner layers)."""
    if module.proj_size:
        raise ValueError("calibration of an LSTM with projections (proj_size) is not built")
    input = _batch_first(module, input)
    directions = 2 if module.bidirectional else 1
    batch = input.shape[0]
    if hx is None:
        zeros = input.new_zeros(module.num_layers * directions, batch, module.hidden_size)
        hx = (zeros, zeros)
    elif hx[0].dim() == 2:
        hx = (hx[0].unsqueeze(1), hx[1].unsqueeze(1))
    if output is not None and module.num_layers == 1 and directions == 1:
        hidden = _batch_first(module, output[0])
        previous = torch.cat([hx[0][0][:, None], hidden[:, :-1]], dim=1)
        return {"weight_ih_l0": input, "weight_hh_l0": previous}
    inputs: dict[str, torch.Tensor] = {}
    layer_input = input
    for layer in range(module.num_layers):
        outputs = []
        for direction in range(directions):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            state = (hx[0][layer * directions + direction], hx[1][layer * directions + direction])
            params = [getattr(module, f"{kind}{suffix}") for kind in ("weight_ih", "weight_hh")]
            if module.bias:
                params += [getattr(module, f"{kind}{suffix}") for kind in ("bias_ih", "bias_hh")]
            sequence = layer_input.flip(1) if direction else layer_input
            output, _, _ = torch.lstm(
                sequence, (state[0][None], state[1][None]), params, module.bias, 1, 0.0,
                False, False, True,
            )  # fmt: skip
            previous = torch.cat([state[0][:, None], output[:, :-1]], dim=1)
            inputs[f"weight_ih{suffix}"] = sequence
            inputs[f"weight_hh{suffix}"] = previous
            outputs.append(output.flip(1) if direction else output)
        layer_input = torch.cat(outputs, dim=-1)
    return inputs


class _Collector:
    """Forward hooks that add the inputs of every calibrated tensor to its statistics."""

    def __init__(
        self,
        tensors: Sequence[PrunableTensor],
        statistics: dict[str, InputStatistics] | None = None,
    ) -> None:
        self.statistics = statistics if statistics is not None else {}
        self.seconds = 0.0
        """Wall time spent in the hooks (what watching a training forward costs)."""
        self._by_module: dict[int, list[PrunableTensor]] = {}
        for tensor in tensors:
            self._by_module.setdefault(id(tensor.module), []).append(tensor)
        self._modules = {id(t.module): t.module for t in tensors}

    def _add(self, name: str, inputs: torch.Tensor) -> None:
        if name not in self.statistics:
            self.statistics[name] = InputStatistics(inputs.shape[0], inputs.shape[2])
        self.statistics[name].add(inputs)

    def _hook(self, module: nn.Module, args: tuple, kwargs: dict[str, Any], output: Any) -> None:
        started = time.perf_counter()
        self._record(module, args, kwargs, output)
        self.seconds += time.perf_counter() - started

    @torch.no_grad()
    def _record(self, module: nn.Module, args: tuple, kwargs: dict[str, Any], output: Any) -> None:
        tensors = self._by_module[id(module)]
        if isinstance(module, nn.LSTM):
            hx = args[1] if len(args) > 1 else kwargs.get("hx")
            by_attribute = _lstm_inputs(module, args[0] if args else kwargs["input"], hx, output)
            for tensor in tensors:
                self._add(tensor.name, _flatten_rows(by_attribute[tensor.attribute]))
            return
        if isinstance(module, nn.MultiheadAttention):
            query = args[0] if args else kwargs["query"]
            key = args[1] if len(args) > 1 else kwargs.get("key")
            if key is not None and key is not query:
                raise ValueError("calibration of cross-attention in-projections is not built")
            inputs = _flatten_rows(query)
        elif isinstance(module, nn.Conv1d | nn.Conv2d):
            inputs = _conv_patches(module, args[0] if args else kwargs["input"])
        else:  # nn.Linear
            inputs = _flatten_rows(args[0] if args else kwargs["input"])
        for tensor in tensors:
            self._add(tensor.name, inputs)

    def attach(self) -> list[torch.utils.hooks.RemovableHandle]:
        return [
            module.register_forward_hook(self._hook, with_kwargs=True)
            for module in self._modules.values()
        ]


def calibration_batches(
    trainer: pl.Trainer, pl_module: pl.LightningModule, count: int, seed: int
) -> list[Any]:
    """`count` training batches, the same for a given `seed` whatever the training position:
    from the datamodule's `calibration_batches` (our `SpeechDataModule`: the training split,
    never dev or test), else the first batches of the module's own training loader."""
    source = getattr(trainer, "datamodule", None)
    if source is not None and hasattr(source, "calibration_batches"):
        return list(source.calibration_batches(count, seed))
    if not hasattr(pl_module, "train_dataloader"):
        raise ValueError("calibration needs training batches: the trainer has no datamodule")
    batches = []
    for batch in pl_module.train_dataloader():
        if len(batches) == count:
            break
        batches.append(batch)
    return batches


def _default_forward(pl_module: pl.LightningModule) -> Callable[[Any], Any]:
    return getattr(pl_module, "calibration_step", None) or (
        lambda batch: pl_module.training_step(batch, 0)
    )


@torch.no_grad()
def collect_input_statistics(
    pl_module: pl.LightningModule,
    tensors: Sequence[PrunableTensor],
    batches: Iterable[Any],
    into: dict[str, InputStatistics] | None = None,
) -> dict[str, InputStatistics]:
    """Run `batches` through the model in eval mode (its `calibration_step`, else its
    `training_step`) and return the input statistics of every tensor in `tensors`, added to
    those of `into` when given (statistics gathered a batch at a time)."""
    collector = _Collector(tensors, into)
    handles = collector.attach()
    was_training = pl_module.training
    pl_module.eval()
    forward = _default_forward(pl_module)
    try:
        for batch in batches:
            forward(pl_module.transfer_batch_to_device(batch, pl_module.device, 0))
    finally:
        for handle in handles:
            handle.remove()
        pl_module.train(was_training)
    missing = [t.name for t in tensors if t.name not in collector.statistics]
    if missing:
        raise ValueError(f"calibration batches never reached {missing[:5]}")
    return collector.statistics


@dataclass
class Calibration:
    """What a data-aware method measured and how: logged with its mask updates."""

    batches: int
    seed: int
    examples: int = 0
    wall_s: float = 0.0
    history: list[tuple[int, float]] = field(default_factory=list)
    """(global step, seconds) of every calibration, for the overhead benchmark."""

    def run(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        tensors: Sequence[PrunableTensor],
    ) -> dict[str, InputStatistics]:
        started = time.perf_counter()
        batches = calibration_batches(trainer, pl_module, self.batches, self.seed)
        statistics = collect_input_statistics(pl_module, tensors, batches)
        self.examples = sum(_batch_size(batch) for batch in batches)
        seconds = time.perf_counter() - started
        self.wall_s += seconds
        self.history.append((trainer.global_step, seconds))
        return statistics

    def metrics(self) -> dict[str, float]:
        return {
            "calibration_batches": float(self.batches),
            "calibration_examples": float(self.examples),
            "calibration_wall_s": self.wall_s,
        }


def _batch_size(batch: Any) -> int:
    if isinstance(batch, dict) and "ids" in batch:
        return len(batch["ids"])
    if isinstance(batch, list | tuple) and batch and isinstance(batch[0], torch.Tensor):
        return len(batch[0])
    return 0


def check_calibration_batches(value: object) -> int:
    """The calibration size option: a positive integer."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"calibration_batches must be a positive integer, got {value!r}")
    return value


class DataAwarePruning(SparsePruning):
    """Base of the methods that choose from calibration statistics (Wanda, SparseGPT).

    One-shot at the schedule's start by default; with `gradual`, at every update of the
    schedule, recalibrated each time on the same batches (the weights and the inputs they see
    have moved). A method implements `choose` for one tensor.

    Args:
        calibration_batches: training batches the statistics are collected on (seeded by
            `seed`; recorded as `<method>/calibration_*` with every update).
        gradual: prune on the schedule instead of once at its start.
    """

    def __init__(
        self,
        schedule: SparsitySchedule,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        seed: int = 0,
        pattern: str = "unstructured",
        calibration_batches: int = 8,
        gradual: bool = False,
    ) -> None:
        check_calibration_batches(calibration_batches)
        if not isinstance(gradual, bool):
            raise ValueError(f"gradual must be true or false, got {gradual!r}")
        if not gradual:
            schedule = dataclasses.replace(schedule, kind="one_shot")
        super().__init__(schedule, include, exclude, seed, pattern)
        self.gradual = gradual
        self.calibration = Calibration(calibration_batches, seed)
        self.statistics: dict[str, InputStatistics] = {}

    @abstractmethod
    def choose(
        self, weight: torch.Tensor, statistics: InputStatistics, k: int, previous: torch.Tensor
    ) -> torch.Tensor:
        """The mask keeping `k` entries of `weight` (it may also update `weight` in place)."""

    def prepare_update(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        self.statistics = self.calibration.run(trainer, pl_module, self.tensors)

    def compute_masks(self, step: int, kept: Mapping[str, int]) -> dict[str, torch.Tensor]:
        masks = {
            name: self.choose(self.weight(name), self.statistics[name], k, self.masks[name])
            for name, k in kept.items()
        }
        self.statistics = {}  # Hessians are d × d per tensor: not kept between updates
        return masks

    def method_metrics(self) -> dict[str, float]:
        return self.calibration.metrics()
