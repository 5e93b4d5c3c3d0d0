"""``qmae``: the command-line front door. It registers the commands (:mod:`qmae_qiskit.commands`, one
module each), calls the one each line names, and turns every error into one line."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from .checkpoint import CheckpointError
from .commands import COMMANDS
from .commands.base import Parser
from .data import DataError
from .options import FLAG, OptionError, Options, add_flags, option


@dataclass(frozen=True)
class GlobalOptions(Options):
    """Options of ``qmae`` itself, before the command."""

    verbose: bool = option(False, "log progress (transpiling, jobs, waiting) at INFO", short="-v")


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="qmae", description="Quantum masked autoencoders on Qiskit.")
    add_flags(parser, GlobalOptions)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qmae`` console script."""
    args = _parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.verbose:  # ours and the runtime client's progress (as its docs advise), not every transpiler pass
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
        for name in ("qmae_qiskit", "qiskit_ibm_runtime"):
            logging.getLogger(name).setLevel(logging.INFO)
    try:
        return int(args.handler(args))
    except OptionError as exc:  # named as the flag the user typed
        return _fail(exc.render(FLAG), 2)
    except (ValueError, DataError, CheckpointError) as exc:
        return _fail(str(exc), 2)
    except OSError as exc:  # a file system that refuses: read-only, full, a name too long, ...
        where = f" ({exc.filename})" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{where}; check the path and that it is writable", 2)
    except KeyboardInterrupt as exc:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # stopping already: a further Ctrl-C must not cut the exit short
        print(f"qmae: {exc or 'interrupted'}", file=sys.stderr)
        return 130
    except SystemExit as exc:  # a handler's own refusal (qmae bench --device cuda without a GPU)
        if isinstance(exc.code, str):
            return _fail(exc.code.removeprefix("qmae bench: "), 2)
        raise
    except Exception as exc:  # a bug, not a bad input: one line, the traceback on request
        from .studies.experiments import RunFailed

        if isinstance(exc, RunFailed):  # runs failed on Ray; the finished ones are kept, the same command retries
            return _fail(str(exc), 1)
        if os.environ.get("QMAE_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if args.wraps_errors:  # Qiskit or the runtime client: the job record, if any, is already on disk
            return _fail(f"{args.command} failed: {type(exc).__name__}: {first} (QMAE_DEBUG=1 shows the traceback)", 2)
        return _fail(
            f"unexpected {type(exc).__name__}: {first} (QMAE_DEBUG=1 shows the traceback; please report it)", 1
        )


def _fail(message: str, status: int) -> int:
    print(f"qmae: error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
