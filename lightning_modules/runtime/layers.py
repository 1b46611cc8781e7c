"""Inference layers whose weight products run in a `SparseMatrix`: drop-in replacements for
`nn.Linear` and `nn.LSTM` (batch first, unidirectional, any number of layers) with the same
call signatures and outputs, up to floating-point summation order."""

from __future__ import annotations

import torch
from torch import nn

from lightning_modules.asr.rnnt import StackedLSTMTranscriber, reverse_within_lengths, stack_frames
from lightning_modules.runtime.formats import SparseMatrix


def lstm_cell(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step from its summed gate pre-activations (directions, 4, H, batch), gates in
    torch's order i, f, g, o, and the cell state (directions, H, batch): few operations,
    since each costs Python overhead at every step."""
    activated = torch.sigmoid(gates)
    c = torch.addcmul(activated[:, 1] * c, activated[:, 0], torch.tanh(gates[:, 2]))
    return activated[:, 3] * torch.tanh(c), c


def input_projection(
    matrices: list[SparseMatrix], sources: list[torch.Tensor], bias: torch.Tensor
) -> torch.Tensor:
    """The input weights of each direction over all steps at once, in the steps' column
    layout (steps, rows, batch) that the recurrence adds to its products."""
    batch, steps, _ = sources[0].shape
    projected = torch.cat(
        [m.matmul(x.reshape(batch * steps, -1).T) for m, x in zip(matrices, sources, strict=True)]
    )
    projected = projected + bias[:, None]
    return projected.view(-1, batch, steps).permute(2, 0, 1).contiguous()


def recurrence(
    recurrent: SparseMatrix,
    projected: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The steps of one LSTM layer (all its directions at once): `projected` (steps,
    directions·4·H, batch), states h (directions·H, batch) and c (directions, H, batch)
    as columns, so each step is one product that adds its input projection, and the cell.
    Returns the outputs (steps, directions·H, batch) and the last h and c."""
    directions, size, batch = c.shape
    outputs = []
    for step in range(projected.shape[0]):
        gates = recurrent.matmul(h, projected[step]).view(directions, 4, size, batch)
        h, c = lstm_cell(gates, c)
        h = h.reshape(directions * size, batch)
        outputs.append(h)
    return torch.stack(outputs), h, c


def block_diagonal(weights: list[torch.Tensor]) -> torch.Tensor:
    """The recurrent weights of several directions as one matrix: one product per step."""
    return torch.block_diag(*[w.detach() for w in weights])


class SparseLinear(nn.Module):
    """y = x Wᵀ + b with W in a `SparseMatrix` (inference only)."""

    def __init__(self, linear: nn.Linear, matrix: SparseMatrix) -> None:
        super().__init__()
        self.matrix = matrix
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach())
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        rows = input.reshape(-1, self.in_features)
        output = self.matrix.matmul(rows.T).T
        if self.bias is not None:
            output = output + self.bias
        return output.reshape(*input.shape[:-1], self.out_features)

    @property
    def weight_bytes(self) -> int:
        return self.matrix.nbytes


class SparseLSTM(nn.Module):
    """`nn.LSTM` (batch_first, unidirectional) run step by step in Python, its input weights
    (all steps at once) and recurrent weights (one step at a time) in `SparseMatrix`es.

    The fused LSTM kernel reads W_hh from memory at every step; here a sparse W_hh reads only
    its non-zeros. Python's per-step overhead is the price, so the converter keeps the fused
    layer wherever it measures faster.
    """

    def __init__(
        self, lstm: nn.LSTM, input_matrices: list[SparseMatrix], hidden_matrices: list[SparseMatrix]
    ) -> None:
        super().__init__()
        if lstm.bidirectional or not lstm.batch_first or lstm.proj_size:
            raise ValueError("SparseLSTM replaces batch-first, unidirectional LSTMs without proj")
        self.hidden_size = lstm.hidden_size
        self.num_layers = lstm.num_layers
        self.input_matrices = input_matrices
        self.hidden_matrices = hidden_matrices
        for layer in range(lstm.num_layers):
            bias = (
                getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")
                if lstm.bias
                else torch.zeros(4 * lstm.hidden_size)
            )
            self.register_buffer(f"bias_l{layer}", bias.detach().clone())

    def forward(
        self, input: torch.Tensor, hx: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        batch, steps, _ = input.shape
        if hx is None:
            zeros = input.new_zeros(self.num_layers, batch, self.hidden_size)
            hx = (zeros, zeros)
        final_h, final_c = [], []
        hidden = input
        for layer in range(self.num_layers):
            bias = getattr(self, f"bias_l{layer}")
            projected = input_projection([self.input_matrices[layer]], [hidden], bias)
            h, c = hx[0][layer].T.contiguous(), hx[1][layer].T[None].contiguous()
            outputs, h, c = recurrence(self.hidden_matrices[layer], projected, h, c)
            hidden = outputs.permute(2, 0, 1)
            final_h.append(h.T)
            final_c.append(c[0].T)
        return hidden, (torch.stack(final_h), torch.stack(final_c))

    @property
    def weight_bytes(self) -> tuple[int, int]:
        """Bytes of the input and of the recurrent weights (all layers)."""
        return (
            sum(m.nbytes for m in self.input_matrices),
            sum(m.nbytes for m in self.hidden_matrices),
        )


class SparseLSTMTranscriber(nn.Module):
    """`StackedLSTMTranscriber` with both directions of a layer stepped together: the input
    weights of each direction run over all steps at once, the recurrent weights of both as one
    block-diagonal `SparseMatrix`, so each step pays Python's overhead once, not twice.
    Same outputs as the module it replaces (the backward direction runs over each sequence
    reversed within its length, as there)."""

    def __init__(
        self,
        transcriber: StackedLSTMTranscriber,
        input_matrices: list[list[SparseMatrix]],
        hidden_matrices: list[SparseMatrix],
    ) -> None:
        super().__init__()
        self.stack = transcriber.stack
        self.output = transcriber.output
        self.input_matrices = input_matrices  # [layer][direction]
        self.hidden_matrices = hidden_matrices  # [layer], block-diagonal over directions
        lstms = [transcriber.forward_lstms]
        if transcriber.backward_lstms is not None:
            lstms.append(transcriber.backward_lstms)
        self.directions = len(lstms)
        self.hidden_size = transcriber.forward_lstms[0].hidden_size
        for layer in range(len(transcriber.forward_lstms)):
            biases = [(d[layer].bias_ih_l0 + d[layer].bias_hh_l0).detach() for d in lstms]
            self.register_buffer(f"bias_l{layer}", torch.stack(biases).view(-1))

    def forward(
        self, input: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, stacked_lengths = stack_frames(input, lengths, self.stack)
        batch, steps, _ = hidden.shape
        size, directions = self.hidden_size, self.directions
        for layer, matrices in enumerate(self.input_matrices):
            sources = [hidden, reverse_within_lengths(hidden, stacked_lengths)][:directions]
            projected = input_projection(matrices, sources, getattr(self, f"bias_l{layer}"))
            h = hidden.new_zeros(directions * size, batch)
            c = hidden.new_zeros(directions, size, batch)
            outputs, _, _ = recurrence(self.hidden_matrices[layer], projected, h, c)
            sequence = outputs.view(steps, directions, size, batch).permute(3, 0, 1, 2)
            parts = [sequence[:, :, 0]]
            if directions == 2:
                parts.append(reverse_within_lengths(sequence[:, :, 1], stacked_lengths))
            hidden = torch.cat(parts, dim=-1)
        return self.output(hidden), stacked_lengths

    @property
    def weight_bytes(self) -> tuple[int, int]:
        """Bytes of the input and of the recurrent weights (all layers and directions)."""
        return (
            sum(m.nbytes for matrices in self.input_matrices for m in matrices),
            sum(m.nbytes for m in self.hidden_matrices),
        )
