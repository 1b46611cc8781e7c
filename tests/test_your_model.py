"""The pruning callbacks in a researcher's own Lightning code (docs/your-model.md): models,
loaders and DataModules written here (`your_models`), the public import only."""

from __future__ import annotations

import csv
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from your_models import (
    LSTMCTC,
    MODELS,
    ConformerCTC,
    ManualLSTMCTC,
    PlainDataModule,
    loader,
    trainer,
)

from lightning_modules.pruning import (
    CSP,
    GMP,
    METHODS,
    CalibrationError,
    PruningTargetWarning,
    SparseGPT,
    SparsitySchedule,
    Wanda,
)

TARGET = 0.8


def schedule(final: float = TARGET, start: int = 2, end: int = 8, every: int = 2):
    return SparsitySchedule(final=final, start=start, end=end, every=every)


def method_for(name: str, model: str, **options: Any) -> pl.Callback:
    """Method `name` as a user would build it for `model`. Lightning's own ModelPruning
    prunes at epoch ends and cannot reach attention's out_proj or a weight-normed weight
    (torch's pruning hook never runs there): those are excluded for it, as its error says."""
    if name == "model_pruning" and model in ("conformer", "wav2vec2", "emformer_rnnt"):
        excluded = {
            "conformer": ["*.out_proj.weight"],
            "wav2vec2": ["*.parametrizations.weight.original1"],
            "emformer_rnnt": [],
        }[model]
        if excluded:
            options = {"exclude": excluded, **options}
    return METHODS[name](schedule(), **options)


def realized(method: Any) -> float:
    tensors = method.tensors
    zeros = sum(int((t.parameter == 0).sum()) for t in tensors)
    return zeros / sum(t.numel for t in tensors)


def fit_steps(method: pl.Callback) -> dict[str, Any]:
    """Lightning's ModelPruning prunes at epoch ends: epochs of one schedule interval."""
    return {"limit_train_batches": method.epoch_steps} if hasattr(method, "epoch_steps") else {}


FEEDS: dict[str, Callable[[str], dict[str, Any]]] = {
    "loader_to_fit_tuple_batches": lambda model: {"train_dataloaders": loader(model=model)},
    "plain_datamodule_dict_batches": lambda model: {"datamodule": PlainDataModule(model=model)},
}
"""How a user hands the trainer its data: `fit`'s keyword arguments for a model's inputs."""


@pytest.mark.slow  # 80 short fits
@pytest.mark.parametrize("feed", sorted(FEEDS))
@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_reaches_its_target_on_every_model_and_feed(
    name: str, model_name: str, feed: str
) -> None:
    torch.manual_seed(0)
    model = MODELS[model_name]()
    method = method_for(name, model_name)
    data = FEEDS[feed](model_name)
    trainer(12, callbacks=[method], **fit_steps(method)).fit(model, **data)
    assert realized(method) == pytest.approx(TARGET, abs=0.01)


@pytest.mark.parametrize(
    "method", [lambda: Wanda(schedule(), calibration_batches=3), lambda: SparseGPT(schedule())]
)
def test_calibration_counts_dict_batches(method: Any) -> None:
    pruning = method()
    data = PlainDataModule(count=32, batch_size=4)
    trainer(4, callbacks=[pruning]).fit(LSTMCTC(), datamodule=data)
    batches = pruning.calibration.batches
    assert pruning.calibration.metrics()["calibration_examples"] == batches * 4


@pytest.mark.parametrize("name", ["wanda", "sparsegpt", "csp"])
def test_a_manual_optimization_module_calibrates_without_stepping(name: str) -> None:
    options = {"sensing": "activation"} if name == "csp" else {}
    method = METHODS[name](schedule(), **options)
    model = ManualLSTMCTC()
    run = trainer(12, callbacks=[method])
    run.fit(model, train_dataloaders=loader())
    assert realized(method) == pytest.approx(TARGET, abs=0.01)
    optimizer = model.optimizers().optimizer
    steps = {int(state["step"]) for state in optimizer.state.values()}
    assert steps == {run.global_step}  # calibration ran the step's forward, never its update


def test_calibration_data_and_forward_given_by_the_user_are_used() -> None:
    calls: list[int] = []
    own = [batch for batch, _ in zip(loader(batch_size=2), range(3), strict=False)]

    def forward(module: pl.LightningModule, batch: Any) -> None:
        calls.append(len(batch[0]))
        module.loss(batch)

    method = Wanda(
        schedule(), calibration_batches=3, calibration_data=own, calibration_forward=forward
    )
    trainer(4, callbacks=[method]).fit(LSTMCTC(), train_dataloaders=loader(batch_size=4))
    assert calls == [2, 2, 2]  # the user's batches (size 2), not the trainer's (size 4)


def test_calibration_is_the_same_for_the_same_seed_from_a_shuffled_loader() -> None:
    masks = []
    for _ in range(2):
        torch.manual_seed(0)
        method = Wanda(schedule(), calibration_batches=2, seed=3)
        pl.seed_everything(0, verbose=False)
        trainer(3, callbacks=[method]).fit(LSTMCTC(), train_dataloaders=loader())
        masks.append({name: mask.clone() for name, mask in method.masks.items()})
    assert all(torch.equal(masks[0][name], masks[1][name]) for name in masks[0])


class Counting(LSTMCTC):
    """Counts training steps, to show an error came before the first."""

    steps = 0

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        Counting.steps += 1
        return super().training_step(batch, batch_idx)


def test_no_usable_batches_is_an_error_before_any_step() -> None:
    with pytest.raises(ValueError, match="calibration_data"):
        Wanda(schedule(), calibration_data=[])
    Counting.steps = 0
    method = Wanda(schedule())
    with pytest.raises(CalibrationError, match="2 training loaders.*calibration_data="):
        trainer(4, callbacks=[method]).fit(
            Counting(), train_dataloaders={"a": loader(), "b": loader()}
        )
    assert Counting.steps == 0


class CrossAttention(LSTMCTC):
    """An attention whose key is not its query, and a layer the forward never runs."""

    def __init__(self) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(32, 2, batch_first=True)
        self.memory = nn.Parameter(torch.randn(1, 5, 32))
        self.unused = nn.Linear(4, 4)

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        encoded = self.lstm(features)[0]
        memory = self.memory.expand(len(features), -1, -1)
        return self.attention(encoded, memory, memory, need_weights=False)[0]


@pytest.mark.parametrize(
    "method",
    [lambda **o: Wanda(schedule(), **o), lambda **o: CSP(schedule(), sensing="activation", **o)],
)
def test_a_layer_calibration_cannot_measure_is_named_with_how_to_exclude_it(method: Any) -> None:
    with pytest.raises(CalibrationError, match=r"attention\.in_proj_weight.*exclude="):
        trainer(4, callbacks=[method(exclude=["unused.weight"])]).fit(
            CrossAttention(), train_dataloaders=loader()
        )
    with pytest.raises(CalibrationError, match=r"never .*unused\.weight.*exclude="):
        trainer(4, callbacks=[method(exclude=["attention.in_proj_weight"])]).fit(
            CrossAttention(), train_dataloaders=loader()
        )
    pruning = method(exclude=["attention.in_proj_weight", "unused.weight"])
    trainer(12, callbacks=[pruning]).fit(CrossAttention(), train_dataloaders=loader())
    names = {tensor.name for tensor in pruning.tensors}
    assert "attention.out_proj.weight" in names  # reached although its forward never runs
    assert realized(pruning) == pytest.approx(TARGET, abs=0.01)


def test_attention_out_projection_statistics_are_its_true_inputs() -> None:
    """The heads' output captured for `out_proj` reproduces the attention's output."""
    from lightning_modules.pruning.calibration import collect_input_statistics
    from lightning_modules.pruning.targets import discover_tensors

    torch.manual_seed(0)
    attention = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    inputs = torch.randn(3, 5, 8)
    tensors = discover_tensors(attention, include=["out_proj.weight"])
    statistics = collect_input_statistics(
        attention, tensors, [inputs], lambda x: attention(x, x, x)
    )["out_proj.weight"]
    heads = torch.nn.functional.multi_head_attention_forward(
        inputs.transpose(0, 1), inputs.transpose(0, 1), inputs.transpose(0, 1), 8, 2,
        attention.in_proj_weight, attention.in_proj_bias, None, None, False, 0.0,
        torch.eye(8), None, training=False, need_weights=False,
    )[0].transpose(0, 1).reshape(-1, 8)  # fmt: skip
    assert statistics.count == 15
    assert torch.allclose(statistics.gram[0], (heads.T @ heads).double(), atol=1e-4)


def test_a_schedule_ending_after_max_steps_is_warned_at_fit_start() -> None:
    method = GMP(schedule(start=2, end=40))
    with pytest.warns(PruningTargetWarning, match="stops after 10 steps"):
        trainer(10, callbacks=[method]).fit(LSTMCTC(), train_dataloaders=loader())


def test_a_pattern_sparser_than_the_target_is_refused() -> None:
    with pytest.raises(ValueError, match="pattern 2:4 keeps at most 50%.*at least 0.5"):
        GMP(schedule(final=0.3), pattern="2:4")


def test_csp_tensors_lagging_the_schedule_are_warned_and_summarized(tmp_path: Path) -> None:
    method = CSP(schedule(), error_threshold=1e-9)  # every tensor waits until the last cut
    logger = CSVLogger(tmp_path, name="run")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer(12, callbacks=[method], logger=logger, log_every_n_steps=1).fit(
            LSTMCTC(), train_dataloaders=loader()
        )
    lag = [w for w in caught if issubclass(w.category, PruningTargetWarning)]
    assert len(lag) == 1 and "lag the schedule" in str(lag[0].message)
    assert set(method.summary) == {t.name for t in method.tensors}
    assert all(
        t == TARGET and v == pytest.approx(TARGET, abs=0.01) for t, v in method.summary.values()
    )
    with open(Path(logger.log_dir) / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert any(float(r["pruning/lagging_tensors"] or 0) > 0 for r in rows)
    last = [r for r in rows if r.get("pruning/target/lstm.weight_ih_l0")][-1]
    assert float(last["pruning/target/lstm.weight_ih_l0"]) == TARGET


@pytest.mark.parametrize(
    "make",
    [
        lambda: CSP(schedule(start=2, end=14)),
        lambda: GMP(schedule(start=2, end=14)),
        lambda: Wanda(schedule(start=2, end=14), gradual=True),
    ],
)
def test_resume_from_a_mid_pruning_checkpoint_ends_with_the_same_masks(
    make: Any, tmp_path: Path
) -> None:
    """Epochs of 8 steps; the interrupted run stops at the epoch boundary 8, mid-schedule."""

    def run(max_steps: int, folder: Path, resume: Path | None = None) -> Any:
        pl.seed_everything(0, verbose=False)
        method = make()
        # saved at the step that ends the epoch: Lightning resumes a checkpoint written by
        # its epoch-end hook with one batch more in that epoch (docs/your-model.md)
        saver = ModelCheckpoint(dirpath=folder, save_last=True, every_n_train_steps=8)
        trainer(
            max_steps, callbacks=[method, saver], enable_checkpointing=True, deterministic=True
        ).fit(LSTMCTC(), train_dataloaders=loader(shuffle=False), ckpt_path=resume)
        return method

    whole = run(20, tmp_path / "whole")
    run(8, tmp_path / "part")
    resumed = run(20, tmp_path / "part", resume=tmp_path / "part" / "last.ckpt")
    assert resumed.masks.keys() == whole.masks.keys()
    assert all(torch.equal(resumed.masks[name], whole.masks[name]) for name in whole.masks)


def test_the_conformer_out_projection_is_pruned_by_every_data_aware_method() -> None:
    for method in (Wanda(schedule()), SparseGPT(schedule()), CSP(schedule(), sensing="activation")):
        torch.manual_seed(0)
        trainer(12, callbacks=[method]).fit(ConformerCTC(), train_dataloaders=loader())
        out = [t for t in method.tensors if t.name.endswith("self_attn.out_proj.weight")]
        assert out and all(float((t.parameter == 0).float().mean()) >= TARGET - 0.01 for t in out)


def test_lightning_model_pruning_refuses_a_weight_normed_convolution() -> None:
    from your_models import Wav2Vec2CTC

    method = METHODS["model_pruning"](schedule())
    with pytest.raises(ValueError, match=r"pos_conv_embed\.conv\.parametrizations.*exclude"):
        data = loader(model="wav2vec2")
        trainer(4, callbacks=[method]).fit(Wav2Vec2CTC(), train_dataloaders=data)
