"""Benchmark reports: ``docs/results/<name>.md`` + ``.json`` + PNG plots.

:class:`Report` owns the formatting every benchmark shares: Markdown tables
(:func:`format_table`, cells escaped so a ``|`` in a note cannot break a row),
a goals section (goal, measured value, met / not met) and the command line
that produced the numbers, which ``diffcore bench`` passes in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diffcore.machine import machine_info

__all__ = ["NA", "Goal", "Report", "format_cell", "format_table", "machine_info"]

#: a cell with no number (a non-finite float, a metric that is not defined there)
NA = "n/a"


def format_cell(v: Any) -> str:
    """One Markdown table cell: floats to 4 significant digits, booleans as yes / no, ``|`` and newlines escaped."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return NA
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows (dicts) -> a Markdown table; the columns are every key, in order of first appearance."""
    if not rows:
        return "(no rows)"
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    md = ["| " + " | ".join(format_cell(c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    md += ["| " + " | ".join(format_cell(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(md)


@dataclass(frozen=True)
class Goal:
    """One goal of a benchmark, checked against the run's numbers.

    Attributes:
        goal: what is asked, in words (``"mean PSNR ≥ bicubic + 1.0 dB"``).
        measured: what this run measured (a number or a short text).
        met: whether the goal is met; None when this run cannot tell (a quick run, a missing model).
        note: why it could not be checked, or what else a reader needs.
    """

    goal: str
    measured: Any
    met: bool | None
    note: str = ""

    @property
    def verdict(self) -> str:
        return "not checked" if self.met is None else ("met" if self.met else "**not met**")

    def row(self) -> dict[str, Any]:
        return {"goal": self.goal, "measured": self.measured, "verdict": self.verdict, "note": self.note}


@dataclass
class Report:
    """Collects tables, goals, plots and notes, then writes Markdown + JSON.

    Plots are saved by the caller into ``out_dir`` (use :meth:`plot_path`) and
    linked from the Markdown.

    Args:
        name: file stem of the report (``codec`` -> ``codec.md``); the benchmark's name with ``-`` as ``_``.
        title: the Markdown title.
        out_dir: where the files go (created).
        command: the command line that produced the numbers, as ``diffcore bench`` passes it;
            None: the canonical ``diffcore bench NAME [--quick]``.
        quick: a smoke run (fewer inputs and repeats); the report says so.
        intro: Markdown under the title.
    """

    name: str
    title: str
    out_dir: Path
    command: str | None = None
    quick: bool = False
    intro: str = ""
    sections: list[tuple[str, str]] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.command is None:
            self.command = f"diffcore bench {self.name.replace('_', '-')}" + (" --quick" if self.quick else "")

    def table(self, heading: str, rows: Sequence[Mapping[str, Any]], note: str = "", *, key: str | None = None) -> None:
        """A section with a Markdown table of ``rows`` (see :func:`format_table`), the rows also in the JSON.

        ``note`` goes above the table; ``key`` names the rows in the JSON (default: the heading).
        """
        self.data[key or heading] = [dict(r) for r in rows]
        self.sections.append((heading, (note + "\n\n" if note else "") + format_table(rows)))

    def goal(self, goal: str, measured: Any, met: bool | None, note: str = "") -> Goal:
        """Record one goal; all of them are written as the report's first section."""
        g = Goal(goal, measured, None if met is None else bool(met), note)
        self.goals.append(g)
        return g

    def text(self, heading: str, body: str) -> None:
        self.sections.append((heading, body))

    def plot_path(self, suffix: str) -> Path:
        return self.out_dir / f"{self.name}_{suffix}.png"

    def image(self, heading: str, path: Path, caption: str = "") -> None:
        self.sections.append((heading, f"![{caption or heading}]({Path(path).name})\n\n{caption}".rstrip()))

    def _goals_section(self) -> str:
        met = sum(g.met is True for g in self.goals)
        checked = sum(g.met is not None for g in self.goals)
        head = f"{met} of {checked} checked goals met" + (
            f" ({len(self.goals) - checked} not checked in this run)." if checked < len(self.goals) else "."
        )
        return head + "\n\n" + format_table([g.row() for g in self.goals])

    def write(self) -> Path:
        machine = machine_info()
        md = [f"# {self.title}", "", f"Produced by `{self.command}`.", ""]
        md.append("Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()) + ".")
        if self.quick:
            md += ["", "A quick run: fewer inputs and repeats, a smoke test of the code, not numbers to report."]
        if self.intro:
            md += ["", self.intro]
        sections = ([("Goals", self._goals_section())] if self.goals else []) + self.sections
        for heading, body in sections:
            md += ["", f"## {heading}", "", body]
        path = self.out_dir / f"{self.name}.md"
        path.write_text("\n".join(md) + "\n")
        payload = {
            "name": self.name,
            "command": self.command,
            "quick": self.quick,
            "machine": machine,
            "goals": [{"goal": g.goal, "measured": g.measured, "met": g.met, "note": g.note} for g in self.goals],
            "results": self.data,
        }
        (self.out_dir / f"{self.name}.json").write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n")
        return path


def _jsonable(v: Any) -> Any:
    """numpy / torch scalars as floats, anything else as its string."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)
