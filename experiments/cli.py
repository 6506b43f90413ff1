"""The `llmsched` command line: one entry point whose subcommands mirror the project's rooms.

Each subcommand is a module in `llmsched.experiments.commands` exposing `HELP`, `add_arguments(parser)`
and `run(args) -> int`; this file only dispatches and turns input errors into one line + exit 2. Exit codes: 0 ok,
1 a checked property is violated (check, place certificate) or some sweep points failed, 2 bad
input, 3 an internal error (a bug: one line, `LLMSCHED_TRACEBACK=1` re-raises it), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from llmsched.sim.errors import InputError

# name -> module under experiments.commands (imported lazily so `llmsched --help` stays fast)
SUBCOMMANDS: dict[str, str] = {
    "simulate": "simulate",
    "workloads": "workloads",
    "policies": "policies_cmd",
    "check": "check",
    "capacity": "capacity",
    "place": "place",
    "reproduce": "reproduce",
    "sweep": "sweep",
    "report": "report",
}


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line with exit code 2 (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        words = self.prog.split()
        name = "llmsched" if words[-1] == "llmsched" else f"llmsched {words[-1]}"
        sys.stderr.write(f"{name}: {' '.join(str(message).split())} (see --help)\n")
        raise SystemExit(2)


def _load(name: str):
    return importlib.import_module(f"llmsched.experiments.commands.{SUBCOMMANDS[name]}")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="llmsched", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_OneLineParser)
    for name in SUBCOMMANDS:
        try:
            mod = _load(name)
        except ModuleNotFoundError as exc:  # a room not built yet: keep the rest usable
            if exc.name != f"llmsched.experiments.commands.{SUBCOMMANDS[name]}":
                raise
            continue
        p = sub.add_parser(name, help=getattr(mod, "HELP", ""), description=getattr(mod, "HELP", ""))
        mod.add_arguments(p)
        p.set_defaults(run_command=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run_command", None):
        parser.print_help()
        return 2
    try:
        return int(args.run_command(args) or 0)
    except InputError as err:
        sys.stderr.write(f"error: {err.one_line()}\n")
        return 2
    except OSError as exc:  # the file system said no (permissions, disk full, a directory as a file)
        target = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        sys.stderr.write(f"error: {exc.strerror or type(exc).__name__}{target} "
                         "(fix: check the path and its permissions)\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BrokenPipeError:  # `llmsched ... | head`: the reader left; not an error of ours
        return 0
    except MemoryError:
        sys.stderr.write("error: out of memory (fix: use a smaller workload, --num-requests or --duration)\n")
        return 2
    except Exception as exc:  # last resort: one line, never a bare traceback
        where = _innermost_frame(exc)
        sys.stderr.write(f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
                         f"{where} (this is a bug in llmsched; please report it with the command line; "
                         "LLMSCHED_TRACEBACK=1 shows the traceback)\n")
        if os.environ.get("LLMSCHED_TRACEBACK"):
            raise
        return 3


def _innermost_frame(exc: BaseException) -> str:
    tb = exc.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f" at {os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}"


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
