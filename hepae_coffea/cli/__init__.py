"""The ``hepae`` command line: one module per command group.

`build_parser` collects the groups' subcommands (``generate``, ``train``, ``run``, ``plot``,
``report``, ``compress``, ``decompress``, ``export``, ``info``, ``demo``); `main` runs one and
turns user mistakes into one line on stderr. Each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from .._version import __version__
from ..errors import HepaeError
from ..io.atomic import is_disk_full
from ..io.guards import Terminated, handle_termination
from . import compress, generate, model, plot, run, train

__all__ = ["build_parser", "command_names", "console_main", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``hepae`` parser with every subcommand, in the order its help lists them."""
    parser = argparse.ArgumentParser(
        prog="hepae", description="Autoencoder compression of jet data, checked with coffea."
    )
    parser.add_argument("--version", action="version", version=f"hepae-coffea {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (generate, train, run, plot, compress, model):
        group.add_parser(sub)
    return parser


def command_names() -> tuple[str, ...]:
    """The subcommands of ``hepae``, in the order its help lists them."""
    actions = build_parser()._actions
    sub = next(a for a in actions if isinstance(a, argparse._SubParsersAction))
    return tuple(sub.choices)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hepae``; user mistakes give one line on stderr and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # font fallbacks of the ATLAS style are not the user's concern
    logging.getLogger("matplotlib").setLevel(max(level, logging.ERROR))
    # Dask failures end in one error line; distributed's own tracebacks only with -v
    if args.verbose == 0:
        if getattr(args, "executor", None) == "dask":
            # importing distributed sets its loggers to INFO: import it before the setting
            import distributed  # noqa: F401
        logging.getLogger("distributed").setLevel(logging.CRITICAL)
    try:
        with handle_termination():
            return int(args.func(args) or 0)
    except (HepaeError, FileNotFoundError, FileExistsError, ValueError, ImportError) as err:
        if args.verbose >= 2:  # -vv: the full traceback, for bug reports
            raise
        print(f"hepae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if not is_disk_full(err) or args.verbose >= 2:
            raise
        print(f"hepae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except Terminated:
        # outputs' temporaries are removed and worker processes stopped by now; leave
        # at once, so that threads cut off mid-read add no noise at interpreter exit
        print(f"hepae {args.command}: terminated", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(143)
    except KeyboardInterrupt:
        print(f"hepae {args.command}: interrupted", file=sys.stderr)
        return 130


def console_main() -> NoReturn:
    """The ``hepae`` console script: `main`, then leave at once.

    Every output is written, closed and renamed into place by the time `main` returns.
    Taking apart the interpreter with torch, numba and coffea loaded (module teardown,
    library destructors, idle thread pools) would add most of a second to every command;
    the process instead flushes stdout, stderr and logging and ends with `main`'s exit
    code. `main` itself returns normally (for callers in Python, such as the tests).
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
