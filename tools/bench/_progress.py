"""Progress of long tool runs on stderr, only when stderr is a terminal (issue 15).

Two shapes:
- `Phases("bench produce")` as a context, then `phase("run 1/2, 8 partitions")` from anywhere
  below it (the shared broker and cluster helpers call it too) and `step("warm-up")` within a
  phase (a bench's own measure): a spinner with the current phase, and one dim line with the
  seconds of each finished one;
- `counted("seeds", total)`: a bar of done / total with a note (violations, rate) and the ETA.

Off a terminal (tests, CI, `| jq`) both do nothing: stdout carries the one JSON result, and
stderr stays what it was. rich is imported only when there is a terminal to draw on.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

__all__ = ["Phases", "counted", "phase", "step"]

_current: Phases | None = None


def _terminal() -> bool:
    return sys.stderr.isatty()


class Phases:
    """`with Phases(title):` a run whose `phase(...)` calls show on stderr (on a terminal)."""

    def __init__(self, title: str, *, enabled: bool | None = None) -> None:
        self.title = title
        self.enabled = _terminal() if enabled is None else enabled
        self.name: str | None = None
        self.base = ""  # the last phase(): what a step() is part of
        self.since = time.monotonic()
        self._status: Any = None
        self._console: Any = None
        self._spinner: Any = None
        self._outer: Phases | None = None

    def __enter__(self) -> Phases:
        global _current
        if self.enabled:
            from rich.console import Console
            from rich.live import Live
            from rich.spinner import Spinner

            self._console = Console(stderr=True)
            self._spinner = Spinner("dots", self.title)
            # stdout is the JSON result's, untouched (rich would route it through the display).
            self._status = Live(self._spinner, console=self._console, transient=True,
                                redirect_stdout=False, refresh_per_second=8)
            self._status.start()
        self._outer, _current = _current, self
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        global _current
        self._finish_phase()
        if self._status is not None:
            self._status.stop()
            self._status = None
        _current = self._outer

    def set(self, name: str) -> None:
        self._finish_phase()
        self.name = name
        self.since = time.monotonic()
        if self._status is not None:
            self._spinner.update(text=f"{self.title}: {name}")

    def _finish_phase(self) -> None:
        took = time.monotonic() - self.since
        if self.name is not None and self._console is not None and took >= 0.05:
            self._console.print(f"[dim]{self.title}: {self.name} ({took:.1f} s)[/dim]")
        self.name = None


def phase(name: str) -> None:
    """The run under way (if any, on a terminal) is now in phase `name`."""
    if _current is not None:
        _current.base = name
        _current.set(name)


def step(name: str) -> None:
    """A step of the current phase: shown as `<phase>: <name>`."""
    if _current is not None:
        _current.set(f"{_current.base}: {name}" if _current.base else name)


@contextmanager
def counted(what: str, total: int, *, enabled: bool | None = None
            ) -> Iterator[Callable[[int, str], None]]:
    """`with counted("seeds", n) as advance:` ... `advance(1, "0 violations")`: a bar of done /
    `total` with the rate per second and the ETA, on a terminal; a no-op elsewhere."""
    if not (_terminal() if enabled is None else enabled) or total <= 1:
        yield lambda _n, _note: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    started = time.monotonic()
    with Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[note]}"), TimeElapsedColumn(), TextColumn("eta"),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=True,
                  redirect_stdout=False) as progress:
        task = progress.add_task(what, total=total, note="")
        done = 0

        def advance(n: int, note: str) -> None:
            nonlocal done
            done += n
            rate = done / max(time.monotonic() - started, 1e-9)
            progress.update(task, advance=n, note=f"{note}, {rate:.1f} {what}/s")

        yield advance
