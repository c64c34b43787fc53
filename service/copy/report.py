"""How a copy shows its progress: a progress bar on a terminal, a line per
table and step otherwise, or, for scripts, one JSON document at the end."""

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text


@dataclass
class Step:
    step: str
    table: str
    rows: int = 0
    seconds: float = 0.0
    began: float = field(default_factory=time.monotonic)

    def done(self) -> None:
        self.seconds = time.monotonic() - self.began

    def line(self) -> str:
        if self.step == "build":
            return f"build {self.table}: {self.rows} in {self.seconds:.1f} s"
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self.step} {self.table}: {self.rows:,} rows in {self.seconds:.1f} s "
            f"({rate:,.0f} rows/s)"
        )


class Lines:
    """A line per table and step as each finishes."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.steps: list[Step] = []

    def started(self, step: str, table: str, rows: int) -> None:
        self.steps.append(Step(step, table))

    def advanced(self, rows: int) -> None:
        self.steps[-1].rows += rows

    def finished(self) -> None:
        self.steps[-1].done()
        self.show(self.steps[-1])

    def show(self, step: Step) -> None:
        print(step.line(), file=self.out, flush=True)

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def close(self) -> None:
        pass


class RowsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f} rows/s")


class Bars(Lines):
    """A progress bar per table and step: rows, rows per second, time left."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        super().__init__(out)
        self.progress = Progress(
            TextColumn("{task.description:<24}"),
            BarColumn(),
            MofNCompleteColumn(),
            RowsPerSecond(),
            TimeRemainingColumn(),
            console=Console(file=out),
        )
        self.progress.start()
        self.task: TaskID | None = None

    def started(self, step: str, table: str, rows: int) -> None:
        super().started(step, table, rows)
        self.task = self.progress.add_task(f"{step} {table}", total=rows)

    def advanced(self, rows: int) -> None:
        super().advanced(rows)
        assert self.task is not None
        self.progress.advance(self.task, rows)

    def show(self, step: Step) -> None:
        pass

    def say(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        self.progress.stop()


class Document(Lines):
    """Nothing while the copy runs; everything in one JSON document at the end."""

    def show(self, step: Step) -> None:
        pass

    def say(self, text: str) -> None:
        pass

    def document(self, **fields: Any) -> str:
        steps = [
            {"step": s.step, "table": s.table, "rows": s.rows, "seconds": round(s.seconds, 3)}
            for s in self.steps
        ]
        return json.dumps(fields | {"steps": steps}, indent=2, ensure_ascii=False)
