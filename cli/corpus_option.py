"""`--corpus PATH`, shared by the commands that read a corpus: its help lists the corpus kinds
a path can name, from the corpus registry, so a kind registered later is listed with no edit
here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


class CorpusPathOption(click.Option):
    """An option whose help ends with the registered corpus kinds, read when help is shown
    (so `csp` starts without importing the readers)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.purpose = self.help  # what the option does in its command

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        import lightning_modules.data.readers  # noqa: F401  (registers the built-in kinds)
        from lightning_modules.data.corpora import path_kinds

        self.help = f"{self.purpose}: a path one of these corpus kinds recognizes — {path_kinds()}"
        return super().get_help_record(ctx)


def corpus_option(help: str, **kwargs: Any) -> Any:
    """The `--corpus` option of a command; `help` says what it does there."""
    return click.option(
        "--corpus",
        "corpus",
        cls=CorpusPathOption,
        type=click.Path(path_type=Path),
        help=help,
        **kwargs,
    )
