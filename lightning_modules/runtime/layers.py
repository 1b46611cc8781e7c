"""Inference layers whose weight products run in a `SparseMatrix`: drop-in replacements for
`nn.Linear`, `nn.LSTM` (batch first, unidirectional, any number of layers) and the LSTM
encoder with the same call signatures and outputs, up to floating-point summation order.
Their recurrent steps run in TorchScript (`lstm_steps`), so recurrent matrices are in the
formats TorchScript passes as plain tensors (dense, CSR, BSR)."""

from __future__ import annotations

import torch
from torch import nn

from lightning_modules.asr.rnnt import StackedLSTMTranscriber, reverse_within_lengths, stack_frames
from lightning_modules.runtime.formats import SparseMatrix


@torch.jit.script
def lstm_steps(
    weight: torch.Tensor, vector: bool, projected: torch.Tensor, h: torch.Tensor, c: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The steps of one LSTM direction, compiled by TorchScript (no Python overhead per
    operation, and no GIL, so directions run concurrently). `projected` (steps, 4·H, batch) is
    the input projection with the biases, h and c (H, batch) the states as columns, so each
    step is one product that adds its input projection; gates in torch's order i, f, g, o.
    `vector`: a one-column product as a matrix-vector product (`SparseMatrix.as_vector`).
    Returns the outputs (steps, H, batch) and the last h and c."""
    size, batch = h.shape[0], h.shape[1]
    outputs: list[torch.Tensor] = []
    for step in range(projected.shape[0]):
        if vector:
            gates = torch.addmv(projected[step, :, 0], weight, h[:, 0]).view(4, size, 1)
        else:
            gates = torch.addmm(projected[step], weight, h).view(4, size, batch)
        activated = torch.sigmoid(gates)
        c = torch.addcmul(activated[1] * c, activated[0], torch.tanh(gates[2]))
        h = activated[3] * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs), h, c


@torch.jit.script
def concurrent_lstm_steps(
    weights: list[torch.Tensor],
    vectors: list[bool],
    projected: list[torch.Tensor],
    h: list[torch.Tensor],
    c: list[torch.Tensor],
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """`lstm_steps` of several independent directions at once: all but the first in forked
    tasks on torch's inter-op threads (a bidirectional layer's two directions use two cores
    at batch 1, where each sparse product alone uses one)."""
    futures: list[torch.jit.Future[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = []
    for index in range(1, len(weights)):
        futures.append(
            torch.jit.fork(
                lstm_steps, weights[index], vectors[index], projected[index], h[index], c[index]
            )
        )
    results = [lstm_steps(weights[0], vectors[0], projected[0], h[0], c[0])]
    for future in futures:
        results.append(torch.jit.wait(future))
    return results


def input_projection(
    matrix: SparseMatrix, source: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """The input weights over all steps of a (batch, steps, inputs) sequence at once, with the
    biases, in the steps' column layout (steps, 4·H, batch) that `lstm_steps` adds."""
    batch, steps, _ = source.shape
    projected = matrix.matmul(source.reshape(batch * steps, -1).T) + bias[:, None]
    return projected.view(-1, batch, steps).permute(2, 0, 1).contiguous()


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
    """`nn.LSTM` (batch_first, unidirectional) run step by step (`lstm_steps`), its input
    weights (all steps at once) and recurrent weights (one step at a time) in `SparseMatrix`es.

    The fused LSTM kernel reads W_hh from memory at every step; here a sparse W_hh reads only
    its non-zeros. The per-step overhead of the steps' loop is the price, so the converter
    keeps the fused layer wherever it measures faster.
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
        batch = input.shape[0]
        if hx is None:
            zeros = input.new_zeros(self.num_layers, batch, self.hidden_size)
            hx = (zeros, zeros)
        final_h, final_c = [], []
        hidden = input
        for layer, recurrent in enumerate(self.hidden_matrices):
            bias = getattr(self, f"bias_l{layer}")
            projected = input_projection(self.input_matrices[layer], hidden, bias)
            h, c = hx[0][layer].T.contiguous(), hx[1][layer].T.contiguous()
            outputs, h, c = lstm_steps(
                recurrent.stored, recurrent.as_vector(batch), projected, h, c
            )
            hidden = outputs.permute(2, 0, 1)
            final_h.append(h.T)
            final_c.append(c.T)
        return hidden, (torch.stack(final_h), torch.stack(final_c))

    @property
    def weight_bytes(self) -> tuple[int, int]:
        """Bytes of the input and of the recurrent weights (all layers)."""
        return (
            sum(m.nbytes for m in self.input_matrices),
            sum(m.nbytes for m in self.hidden_matrices),
        )


class SparseLSTMTranscriber(nn.Module):
    """`StackedLSTMTranscriber` stepped: the input weights of each direction run over all
    steps at once, the recurrent steps of a layer's two directions concurrently
    (`concurrent_lstm_steps`). Same outputs as the module it replaces (the backward direction
    runs over each sequence reversed within its length, as there)."""

    def __init__(
        self,
        transcriber: StackedLSTMTranscriber,
        input_matrices: list[list[SparseMatrix]],
        hidden_matrices: list[list[SparseMatrix]],
    ) -> None:
        super().__init__()
        self.stack = transcriber.stack
        self.output = transcriber.output
        self.input_matrices = input_matrices  # [layer][direction]
        self.hidden_matrices = hidden_matrices  # [layer][direction]
        lstms = [transcriber.forward_lstms]
        if transcriber.backward_lstms is not None:
            lstms.append(transcriber.backward_lstms)
        self.directions = len(lstms)
        self.hidden_size = transcriber.forward_lstms[0].hidden_size
        for layer in range(len(transcriber.forward_lstms)):
            biases = [(d[layer].bias_ih_l0 + d[layer].bias_hh_l0).detach() for d in lstms]
            self.register_buffer(f"bias_l{layer}", torch.stack(biases))  # (directions, 4·H)

    def forward(
        self, input: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, stacked_lengths = stack_frames(input, lengths, self.stack)
        batch = hidden.shape[0]
        zeros = [hidden.new_zeros(self.hidden_size, batch)] * self.directions
        for layer, recurrent in enumerate(self.hidden_matrices):
            sources = [hidden, reverse_within_lengths(hidden, stacked_lengths)][: self.directions]
            biases = getattr(self, f"bias_l{layer}")
            projected = [
                input_projection(matrix, source, bias)
                for matrix, source, bias in zip(
                    self.input_matrices[layer], sources, biases, strict=True
                )
            ]
            results = concurrent_lstm_steps(
                [m.stored for m in recurrent],
                [m.as_vector(batch) for m in recurrent],
                projected,
                zeros,
                zeros,
            )
            parts = [outputs.permute(2, 0, 1) for outputs, _, _ in results]  # (B, T, H) each
            if self.directions == 2:
                parts[1] = reverse_within_lengths(parts[1], stacked_lengths)
            hidden = torch.cat(parts, dim=-1)
        return self.output(hidden), stacked_lengths

    @property
    def weight_bytes(self) -> tuple[int, int]:
        """Bytes of the input and of the recurrent weights (all layers and directions)."""
        return (
            sum(m.nbytes for matrices in self.input_matrices for m in matrices),
            sum(m.nbytes for matrices in self.hidden_matrices for m in matrices),
        )
