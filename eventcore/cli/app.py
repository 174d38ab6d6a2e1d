"""The whole ``eventcore`` command: the group with every subcommand registered."""

from __future__ import annotations

from eventcore.cli import operations, retention, transfer
from eventcore.cli.commands import cli, streams

__all__ = ["cli"]

operations.register(cli)
transfer.register(cli)
retention.register(cli)
streams.add_command(retention.close)
streams.add_command(retention.delete)
