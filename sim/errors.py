"""Input errors raised at the edge (configs, traces, CLI flags).

An `InputError` carries the file, the field and the fix; the CLI prints it as one line and exits 2.
Nothing here may import the rest of the toolkit.
"""

from __future__ import annotations


class InputError(ValueError):
    """A user-facing input problem: names the source, the field and how to fix it."""

    def __init__(self, source: str, field: str, problem: str, fix: str = "") -> None:
        self.source = str(source)
        self.field = str(field)
        self.problem = problem
        self.fix = fix
        super().__init__(self.one_line())

    def __reduce__(self) -> tuple[type[InputError], tuple[str, str, str, str]]:
        """Picklable with its four fields (a worker process's error reaches the parent intact)."""
        return (type(self), (self.source, self.field, self.problem, self.fix))

    def one_line(self) -> str:
        where = f"{self.source}: {self.field}" if self.field else self.source
        msg = f"{where}: {self.problem}"
        if self.fix:
            msg += f" (fix: {self.fix})"
        return " ".join(msg.split())
