"""`llmsched check NAME PATH`: run a registered checker on a saved run or plan directory.

Exit 0 when the property holds, 1 with the witness printed when it fails, 2 on bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from llmsched.sim.errors import InputError

HELP = "run a checker on a saved run or plan (exit 0 = holds, 1 = violated, witness printed)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="checker name (omit with --list)")
    p.add_argument("path", nargs="?", help="run directory (or plan directory for placement)")
    p.add_argument("--list", action="store_true", help="list the registered checkers")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="checker option, e.g. -o client_a=0 (repeatable)")


def _accepted_options(fn) -> set[str] | None:
    """Keyword options a checker takes (None if it takes **kwargs, i.e. anything)."""
    import inspect

    params = list(inspect.signature(fn).parameters.values())[1:]  # the first one is the path
    if any(prm.kind is inspect.Parameter.VAR_KEYWORD for prm in params):
        return None
    return {prm.name for prm in params}


def _parse_option(text: str):
    if "=" not in text:
        raise InputError("--option", text, "expected KEY=VALUE")
    key, value = text.split("=", 1)
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, value


def run_guarded(fn, path: Path, options: dict):
    """Call a checker; a file it cannot read (corrupt/truncated parquet, bad JSON, bad bytes) is
    bad input (exit 2), never a violation (exit 1) and never a traceback."""
    from llmsched.sim.results import READ_ERRORS, read_error

    try:
        return fn(path, **options)
    except InputError:
        raise
    except READ_ERRORS as exc:
        raise read_error(path, exc) from None


def run(args: argparse.Namespace) -> int:
    from llmsched.proofs_check.registry import checkers

    entries = checkers()
    if args.list or not args.name:
        for e in entries.values():
            print(f"{e.name:<24} [{e.target}] {e.help}")
        return 0
    if args.name not in entries:
        raise InputError("llmsched check", "NAME", f"unknown checker {args.name!r}",
                         f"use one of: {', '.join(entries)}")
    if not args.path:
        raise InputError("llmsched check", "PATH", "missing the run/plan directory")
    path = Path(args.path)
    if not path.exists():
        raise InputError(str(path), "PATH", "does not exist", "pass a directory written by simulate/place")
    options = dict(_parse_option(o) for o in args.option)
    accepted = _accepted_options(entries[args.name].fn)
    unknown = sorted(set(options) - accepted) if accepted is not None else []
    if unknown:
        raise InputError("--option", unknown[0], f"not an option of checker {args.name!r}",
                         f"use one of: {', '.join(sorted(accepted)) or '(none)'}")
    verdict = run_guarded(entries[args.name].fn, path, options)
    print(verdict.to_json() if args.json else str(verdict))
    return 0 if verdict.ok else 1
