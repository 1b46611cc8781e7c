"""The metrics stream of a run: one JSON line per logging call (`metrics.jsonl`), each with
its step and the wall-clock time it was logged at (`wall_time`, Unix seconds), so learning
curves can be drawn against time as well as steps."""

from __future__ import annotations

import json
import time
from argparse import Namespace
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only


class JsonlLogger(Logger):
    """A Lightning logger appending one JSON line per logging call to `path`.

    `resume_step` drops lines logged after that step, so a run resumed from a checkpoint
    does not hold the metrics of the steps it is about to redo.
    """

    def __init__(self, path: str | Path, resume_step: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            kept = [
                line
                for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line)["step"] <= resume_step
            ]
            self.path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    @property
    def name(self) -> str:
        return "jsonl"

    @property
    def version(self) -> str:
        return "0"

    @rank_zero_only
    def log_hyperparams(
        self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        """Hyperparameters live in the run's config.yaml, not in the metrics stream."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        record = {
            "step": step,
            "wall_time": time.time(),
            **{key: float(value) for key, value in metrics.items()},
        }
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """The records a `JsonlLogger` wrote, in order; a broken line is a ValueError that
    names the file and the line."""
    records = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not a JSON record ({error})") from None
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            raise ValueError(f"{path}:{number}: a metrics record needs an integer 'step'")
        records.append(record)
    return records
