"""Benchmark reports: ``docs/results/<name>.md`` + ``.json`` + PNG plots."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
    return str(v)


@dataclass
class Report:
    """Collects tables, plots and notes, then writes Markdown + JSON.

    Plots are saved by the caller into ``out_dir`` (use :meth:`plot_path`) and
    linked from the Markdown.
    """

    name: str
    title: str
    out_dir: Path
    command: str
    intro: str = ""
    sections: list[tuple[str, str]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def table(self, heading: str, rows: list[dict[str, Any]], note: str = "") -> None:
        """A Markdown table from a list of dicts (columns from the first row)."""
        self.data[heading] = rows
        if not rows:
            self.sections.append((heading, note + "\n\n(no rows)"))
            return
        cols = list(rows[0])
        md = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        md += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
        self.sections.append((heading, (note + "\n\n" if note else "") + "\n".join(md)))

    def text(self, heading: str, body: str) -> None:
        self.sections.append((heading, body))

    def plot_path(self, suffix: str) -> Path:
        return self.out_dir / f"{self.name}_{suffix}.png"

    def image(self, heading: str, path: Path, caption: str = "") -> None:
        self.sections.append((heading, f"![{caption or heading}]({Path(path).name})\n\n{caption}".rstrip()))

    def write(self) -> Path:
        machine = machine_info()
        md = [f"# {self.title}", "", f"Produced by `{self.command}`.", ""]
        md.append("Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()) + ".")
        if self.intro:
            md += ["", self.intro]
        for heading, body in self.sections:
            md += ["", f"## {heading}", "", body]
        path = self.out_dir / f"{self.name}.md"
        path.write_text("\n".join(md) + "\n")
        payload = {"name": self.name, "command": self.command, "machine": machine, "results": self.data}
        (self.out_dir / f"{self.name}.json").write_text(json.dumps(payload, indent=2, default=float) + "\n")
        return path
