"""The `llmsched` command line: one entry point whose subcommands mirror the project's rooms.

Each subcommand is a module in `llmsched.experiments.commands` exposing `HELP`, `add_arguments(parser)`
and `run(args) -> int`; this file only dispatches and turns input errors into one line + exit 2.
"""

from __future__ import annotations

import argparse
import importlib
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
        sys.stderr.write(f"llmsched {self.prog.split()[-1]}: {message} (see --help)\n")
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
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except InputError as err:
        sys.stderr.write(f"error: {err.one_line()}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
