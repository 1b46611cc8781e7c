"""The `csp` command: one entry point, one module per subcommand group. Nothing imports it.

Usage:

    csp data synth --size small --out data/small     # the offline TTS corpus   (cli/data.py)
    csp data real --out data/real                    # real speech, test only  (cli/data.py)
    csp train --config FILE [--set key=value]        # one run                  (cli/train.py)
    csp evaluate MODEL --corpus PATH / transcribe    # WER, CER; text of audio  (cli/evaluate.py)
    csp export CKPT --out FILE / csp audit CKPT      # saved models             (cli/models.py)
    csp bench MODEL --corpus PATH [--batch 1,16]     # sparse runtime speed     (cli/bench.py)
    csp reproduce [--grid NAME|FILE]                 # the paper comparison     (cli/reproduce.py)
    csp report EXPERIMENT... --out DIR               # tables, figures, HTML    (cli/report.py)
    csp sweep create|run|status|best|dashboard ...   # Optuna studies           (cli/sweep.py)

Each command imports the work it runs when it runs, so `csp --help` starts at once.
"""

from __future__ import annotations

import os
import sys

import click

from cli.bench import bench
from cli.data import data
from cli.evaluate import evaluate, transcribe
from cli.models import audit, export
from cli.report import report
from cli.reproduce import reproduce
from cli.sweep import sweep
from cli.train import train
from experiments.files import ConfigError
from lightning_modules.data.manifest import CorpusError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """csp-asr: compressed-sensing-based pruning (CSP) of RNN-T speech recognizers,
    compared run for run with the baseline pruning methods.

    Every subcommand explains itself with --help.
    """


for command in (data, train, evaluate, transcribe, export, audit, bench, reproduce, report, sweep):
    cli.add_command(command)


def main() -> None:
    """Console entry point: bad input ends with one clear message, not a traceback."""
    # Each csp command owns its W&B service. One inherited from a parent process (a
    # notebook, a test runner) outlives a killed run and keeps its run id "in use",
    # so resuming that run would fail.
    os.environ.pop("WANDB_SERVICE", None)
    try:
        cli(standalone_mode=False, prog_name="csp")
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except (ConfigError, CorpusError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
