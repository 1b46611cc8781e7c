"""Errors the commands show as one `error:` line."""

from __future__ import annotations

import click


class FileArgumentError(click.ClickException):
    """A file argument that cannot be used: shown as one `error:` line, exit code 2."""

    exit_code = 2

    def show(self, file: object = None) -> None:
        click.echo(f"error: {self.message}", err=True)
