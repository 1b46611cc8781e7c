"""Reading W&B runs back from their offline files, with W&B's own reader (`wandb leet`).

The offline `.wandb` file is the only place W&B keeps a run's history, config and summary
until it is synced; analysis and tests read it here without any network.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def read_offline_run(folder: str | Path) -> dict[str, Any]:
    """A run's id, group, job type, tags, config, history rows (in order) and summary."""
    done = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ValueError(f"{folder}: not a readable W&B run ({done.stderr.strip()[-300:]})")
    run: dict[str, Any] = {"config": {}, "history": [], "summary": {}}
    for line in done.stdout.splitlines():
        record = json.loads(line)
        kind = record.get("type")
        if kind == "run":
            body = record["run"]
            run.update(
                id=body.get("run_id"),
                project=body.get("project"),
                group=body.get("run_group"),
                job_type=body.get("job_type"),
                tags=body.get("tags", []),
            )
            run["config"].update(body.get("config", {}).get("update", {}))
        elif kind == "config":
            run["config"].update(record["config"].get("update", {}))
        elif kind == "history":
            run["history"].append(record["history"]["item"])
        elif kind == "summary":
            run["summary"].update(record["summary"].get("update", {}))
    run["config"].pop("_wandb", None)
    return run
