"""The whole ``eventcore`` command: the group with every subcommand registered."""

from __future__ import annotations

from eventcore.cli import operations, transfer
from eventcore.cli.commands import cli

__all__ = ["cli"]

operations.register(cli)
transfer.register(cli)
