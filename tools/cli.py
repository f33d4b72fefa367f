"""The `redshank` command, on click: every command and sub-command has `--help`, shell completion
(`redshank completion bash|zsh|fish`) and exit codes that mean something (tools/clikit.py).

Commands are imported lazily, so `redshank --help` and completion stay fast. Two kinds:
- click commands and groups (`topic`, `group`, `cluster`, ...), in their own modules;
- the older argparse commands (`start`, `actors`, `sim`, `bench ...`), each a module with
  `main(argv) -> int`, run with their arguments untouched (their `--help` is argparse's).

A `CliError` raised anywhere prints one line on stderr (`redshank: ...`) and exits with its code;
Ctrl-C exits 130. Click chose over typer (typer is click underneath plus type-hint magic we do not
need) and over argparse (no completion, no nested groups without hand-written dispatch).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import click

from redshank.tools.clikit import EXIT_USAGE, CliError

__all__ = ["COMMANDS", "cli", "main"]

# name -> (target, one-line help). target is "module:attribute" for a click command or group,
# or "module" for an argparse command with main(argv) -> int. A tuple of such entries is a group
# of argparse commands.
_Entry = tuple[str, str]
COMMANDS: dict[str, _Entry | tuple[str, dict[str, _Entry]]] = {
    "start": ("redshank.tools.start", "start a broker node (single node on 127.0.0.1:9092)"),
    "topic": ("redshank.tools.cmd_topic:topic",
              "create, list, describe, delete, configure, produce to and consume topics"),
    "group": ("redshank.tools.cmd_group:group",
              "consumer groups: list, describe (members, offsets, lag), delete, seek"),
    "transaction": ("redshank.tools.cmd_txn:transaction",
                    "transactions: list, describe, and the producers of a topic's partitions"),
    "cluster": ("redshank.tools.cmd_cluster:cluster",
                "cluster info, health, configs, partitions, leadership; start N local nodes"),
    "transform": ("redshank.tools.cmd_transform:transform",
                  "data transforms: deploy a Python class next to a topic's partitions"),
    "actors": ("redshank.tools.actors_cmd", "show every core's mailboxes and actors"),
    "top": ("redshank.tools.top", "a live view of a node's cores, actors and mailboxes"),
    "sim": ("redshank.tools.sim", "run seeded Raft simulations"),
    "bench": ("benchmarks (JSON output)", {
        "codec": ("redshank.tools.bench.codec", "benchmark the Kafka codec"),
        "records": ("redshank.tools.bench.records", "benchmark records and compression"),
        "storage": ("redshank.tools.bench.storage", "benchmark the partition log"),
        "mailbox": ("redshank.tools.bench.mailbox", "benchmark actors and mailboxes"),
        "copies": ("redshank.tools.bench.copies", "count a batch's cross-core copies"),
        "produce": ("redshank.tools.bench.produce", "benchmark produce against a broker"),
        "consume": ("redshank.tools.bench.consume", "benchmark consume against a broker"),
        "e2e": ("redshank.tools.bench.e2e", "benchmark end-to-end latency"),
        "transform": ("redshank.tools.bench.transform",
                      "benchmark an in-broker transform against a separate process"),
        "catchup": ("redshank.tools.bench.catchup",
                    "benchmark a lagging follower's catch-up on a 3-node cluster"),
    }),
}

_PASSTHROUGH = {"ignore_unknown_options": True, "allow_extra_args": True,
                "help_option_names": [], "allow_interspersed_args": False}


def _package_version() -> str:
    try:
        return version("redshank")
    except PackageNotFoundError:
        return "unknown"


def argparse_command(name: str, module_name: str, about: str) -> click.Command:
    """A click command that runs an argparse module's main(argv) with the arguments as given."""

    @click.pass_context
    def run(ctx: click.Context, args: tuple[str, ...]) -> None:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                raise CliError(f"{ctx.command_path}: not built yet", 3) from exc
            raise
        try:
            code = module.main(list(args))
        except SystemExit as exc:  # argparse: --help (0) and bad usage (2)
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        ctx.exit(int(code or 0))

    return click.Command(
        name, callback=run, help=f"{about} (`{name} --help` for its options)",
        short_help=about, context_settings=dict(_PASSTHROUGH),
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)])


class LazyGroup(click.Group):
    """A group whose commands are imported only when used (or listed by completion/help)."""

    def __init__(self, *args: Any, entries: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entries = entries

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.entries) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        entry = self.entries.get(cmd_name)
        if entry is None:
            return None
        target, about = entry
        if isinstance(about, dict):
            return LazyGroup(cmd_name, help=target, entries=about, no_args_is_help=True)
        if ":" not in target:
            return argparse_command(cmd_name, target, about)
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                return click.Command(cmd_name, help=f"{about} (not built yet)",
                                     callback=_not_built(cmd_name))
            raise
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The one-line help from the table: listing commands imports none of them.
        rows = []
        for name in self.list_commands(ctx):
            entry = self.entries.get(name)
            if entry is not None:
                about = entry[1] if not isinstance(entry[1], dict) else entry[0]
            else:
                about = self.commands[name].get_short_help_str()
            rows.append((name, about))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _not_built(name: str) -> Any:
    def fail() -> None:
        raise CliError(f"redshank {name}: not built yet", 3)
    return fail


@click.group(cls=LazyGroup, entries=COMMANDS, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_package_version(), "--version", "-V", prog_name="redshank",
                      message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Redshank: a Kafka-API-compatible streaming broker. `redshank COMMAND --help` for more."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help(), err=True)
        ctx.exit(EXIT_USAGE)


@cli.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script: eval "$(redshank completion bash)"."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(cli, {}, "redshank", "_REDSHANK_COMPLETE").source())


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(args=args, prog_name="redshank", standalone_mode=False)
    except CliError as exc:
        click.echo(f"redshank: {exc.message}", err=True)
        return exc.code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("redshank: aborted", err=True)
        return 130
    except KeyboardInterrupt:
        return 130
    # standalone_mode=False: click returns ctx.exit()'s code, or the callback's return value.
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
