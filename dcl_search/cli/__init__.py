"""The ``dcl-search`` command line. Every user mistake ends in one line and exit status 2."""

from __future__ import annotations

import argparse
import atexit
import os
import sys
from collections.abc import Sequence

from dcl_search import __version__
from dcl_search._errors import DCLSearchError
from dcl_search._plugins import add_plugins
from dcl_search._ray import stop_ray
from dcl_search.cli import _export, _reeval, _search, _show, _train

COMMANDS = (_train, _search, _export, _reeval, _show)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcl-search",
        description="Search and train knowledge-transfer graphs for deep collaborative learning.",
    )
    parser.add_argument("--version", action="version", version=f"dcl-search {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    for command_parser in commands.choices.values():
        command_parser.add_argument(
            "--plugin",
            action="append",
            default=[],
            metavar="MODULE|FILE.py",
            help="import your own registered models, gates or datasets from this module or file, "
            "here and in every Ray worker (repeatable; adds to $DCL_SEARCH_PLUGINS)",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        add_plugins(args.plugin)  # before Ray starts: its workers inherit the environment
        return args.handler(args)
    except DCLSearchError as error:
        print(f"dcl-search: error: {error}", file=sys.stderr)
        return 2
    except ValueError as error:  # argument checks of dataclasses (label noise, ...)
        print(f"dcl-search: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dcl-search: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `dcl-search show GRAPH | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def console() -> None:
    """The installed ``dcl-search`` command: :func:`main`, then a quick exit.

    Once everything is written, Python's own finalization (tearing down torch, Ray, pandas)
    still takes over a second after every command and changes nothing on disk; so Ray is
    stopped, the exit handlers run and the streams are flushed, and the process ends there.
    """
    code = main()
    stop_ray()
    atexit._run_exitfuncs()  # logging, sqlite and the like close as at a normal exit
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    console()
