"""Calibration statistics for data-aware pruning (Wanda, SparseGPT, CSP's activation
sensing): the second moment XᵀX of what each prunable tensor multiplies, collected by forward
hooks while calibration batches run through the model.

A prunable weight W (rows × d) computes W·x for some input x ∈ ℝᵈ. Which x that is depends on
the module: the input of an `nn.Linear`; the unfolded patches of an `nn.Conv1d/2d` (one matrix
per group, since each group of rows sees its own channels); the layer input (`weight_ih_l*`)
or the previous hidden state (`weight_hh_l*`) of an `nn.LSTM`; the query, key or value of an
`nn.MultiheadAttention`'s projections. Its `out_proj` is a Linear whose forward never runs
(attention reads the weight directly): its input, the heads' concatenated output, is obtained
by running the attention once more with an identity output projection. `InputStatistics`
holds Σ x xᵀ and the count of x for each.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from lightning_modules.pruning.targets import PrunableTensor


class CalibrationError(ValueError):
    """Calibration cannot measure a tensor, or has no batches to measure on."""


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
    """Forward hooks that add the inputs of every calibrated tensor to its statistics.

    `model` is searched for the `nn.MultiheadAttention` that owns an `out_proj` among the
    tensors: that Linear never runs its own forward, so its inputs are taken at its owner.
    """

    def __init__(
        self,
        model: nn.Module,
        tensors: Sequence[PrunableTensor],
        statistics: dict[str, InputStatistics] | None = None,
    ) -> None:
        self.statistics = statistics if statistics is not None else {}
        self.seconds = 0.0
        """Wall time spent in the hooks (what watching a training forward costs)."""
        owners = {
            id(module.out_proj): module
            for module in model.modules()
            if isinstance(module, nn.MultiheadAttention)
        }
        self._by_module: dict[int, list[PrunableTensor]] = {}
        self._out_projections: dict[int, list[PrunableTensor]] = {}
        self._modules: dict[int, nn.Module] = {}
        for tensor in tensors:
            owner = owners.get(id(tensor.module))
            hooked = owner if owner is not None else tensor.module
            into = self._out_projections if owner is not None else self._by_module
            into.setdefault(id(hooked), []).append(tensor)
            self._modules[id(hooked)] = hooked
        self._rerunning = False

    def _add(self, name: str, inputs: torch.Tensor) -> None:
        if name not in self.statistics:
            self.statistics[name] = InputStatistics(inputs.shape[0], inputs.shape[2])
        self.statistics[name].add(inputs)

    def _hook(self, module: nn.Module, args: tuple, kwargs: dict[str, Any], output: Any) -> None:
        if self._rerunning:
            return
        started = time.perf_counter()
        tensors = self._by_module.get(id(module), []) + self._out_projections.get(id(module), [])
        try:
            self._record(module, args, kwargs, output)
        except (ValueError, NotImplementedError, RuntimeError) as error:
            names = [tensor.name for tensor in tensors]
            raise CalibrationError(
                f"calibration cannot measure the inputs of {', '.join(names)}: {error}. "
                f"Leave it dense with exclude={names!r}"
            ) from error
        self.seconds += time.perf_counter() - started

    @torch.no_grad()
    def _record(self, module: nn.Module, args: tuple, kwargs: dict[str, Any], output: Any) -> None:
        tensors = self._by_module.get(id(module), [])
        if isinstance(module, nn.LSTM):
            hx = args[1] if len(args) > 1 else kwargs.get("hx")
            by_attribute = _lstm_inputs(module, args[0] if args else kwargs["input"], hx, output)
            for tensor in tensors:
                self._add(tensor.name, _flatten_rows(by_attribute[tensor.attribute]))
        elif isinstance(module, nn.MultiheadAttention):
            self._record_attention(module, args, kwargs, tensors)
        else:
            if isinstance(module, nn.Conv1d | nn.Conv2d):
                inputs = _conv_patches(module, args[0] if args else kwargs["input"])
            else:  # nn.Linear
                inputs = _flatten_rows(args[0] if args else kwargs["input"])
            for tensor in tensors:
                self._add(tensor.name, inputs)

    def _record_attention(
        self,
        module: nn.MultiheadAttention,
        args: tuple,
        kwargs: dict[str, Any],
        tensors: Sequence[PrunableTensor],
    ) -> None:
        names = ("query", "key", "value")
        query, key, value = (
            args[i] if len(args) > i else kwargs.get(name) for i, name in enumerate(names)
        )
        seen = {"q_proj_weight": query, "k_proj_weight": key, "v_proj_weight": value}
        for tensor in tensors:
            if tensor.attribute == "in_proj_weight":
                if key is not query or value is not query:
                    raise ValueError(
                        "the fused in_proj_weight of an attention whose query, key and value "
                        "differ (cross-attention) is not built"
                    )
                inputs = query
            else:
                inputs = seen[tensor.attribute]
            self._add(tensor.name, _flatten_rows(inputs))
        projections = self._out_projections.get(id(module), [])
        if projections:
            heads = self._heads_output(module, args, kwargs)
            for tensor in projections:
                self._add(tensor.name, _flatten_rows(heads))

    def _heads_output(
        self, module: nn.MultiheadAttention, args: tuple, kwargs: dict[str, Any]
    ) -> torch.Tensor:
        """The input of `module.out_proj`: the attention run again with an identity output
        projection (and no bias), in eval mode as calibration is."""
        weight, bias = module.out_proj.weight, module.out_proj.bias
        saved = weight.data, None if bias is None else bias.data
        weight.data = torch.eye(weight.shape[1], dtype=weight.dtype, device=weight.device)
        if bias is not None:
            bias.data = torch.zeros_like(bias.data)
        self._rerunning = True
        try:
            heads = module(*args, **{**kwargs, "need_weights": False})[0]
        finally:
            self._rerunning = False
            weight.data = saved[0]
            if bias is not None:
                bias.data = saved[1]
        return heads

    def attach(self) -> list[torch.utils.hooks.RemovableHandle]:
        return [
            module.register_forward_hook(self._hook, with_kwargs=True)
            for module in self._modules.values()
        ]


@torch.no_grad()
def collect_input_statistics(
    model: nn.Module,
    tensors: Sequence[PrunableTensor],
    batches: Iterable[Any],
    forward: Callable[[Any], Any],
    into: dict[str, InputStatistics] | None = None,
) -> dict[str, InputStatistics]:
    """Run `forward` on each of `batches` with `model` in eval mode and return the input
    statistics of every tensor in `tensors`, added to those of `into` when given (statistics
    gathered a batch at a time). A tensor no batch reached is an error naming it."""
    collector = _Collector(model, tensors, into)
    handles = collector.attach()
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            forward(batch)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    missing = [t.name for t in tensors if t.name not in collector.statistics]
    if missing:
        raise CalibrationError(
            f"the calibration batches never reached {missing[:5]}"
            f"{f' and {len(missing) - 5} more' if len(missing) > 5 else ''}: the forward does "
            f"not run these layers; leave them dense with exclude={missing[:5]!r}"
        )
    return collector.statistics
