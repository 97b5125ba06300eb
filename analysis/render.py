"""The table type of the analysis and how it is written: cell text, Markdown (terminal, README), LaTeX with
booktabs rules (papers), CSV (further work).

A `Table` keeps its numbers (`data`, for CSV) and their text (`display`, for Markdown and LaTeX); all three
formats go through pandas.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

FORMATS = ("markdown", "latex", "csv")
SUFFIX = {"markdown": "md", "latex": "tex", "csv": "csv"}
MISSING = "missing"
"""A cell that has no run: never filled from elsewhere."""
NOT_REPORTED = "–"
"""Nothing to report: a value the paper does not give, or a param where it does not apply."""
NOT_APPLICABLE = "n/a"
"""A cell that cannot have a value (ours in a literature row)."""
REFERENCE = "ref"
"""The reference row's cell in a column of differences to it."""


@dataclass
class Table:
    """One table: `data` holds the numbers, `display` the same table as text."""

    name: str
    title: str
    data: pd.DataFrame
    display: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def number(value: Any, digits: int, absent: str, signed: bool = False) -> str:
    """A value with `digits` decimals (`signed`: always with its sign); `absent` for None or a non-finite value."""
    if value is None or not math.isfinite(float(value)):
        return absent
    return f"{float(value):+.{digits}f}" if signed else f"{float(value):.{digits}f}"


def mean_std(mean: float, std: float, n: int, digits: int) -> str:
    """'missing' without runs, the value for one run, 'mean ± std' for several."""
    if n == 0 or not math.isfinite(mean):
        return MISSING
    if n == 1 or not math.isfinite(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def render(table: Table, fmt: str, prefix: str = "") -> str:
    """One table in `fmt`; `prefix` (the study) makes LaTeX labels unique."""
    if fmt == "markdown":
        return markdown(table)
    if fmt == "latex":
        return latex(table, f"tab:{prefix}_{table.name}" if prefix else f"tab:{table.name}")
    if fmt == "csv":
        return table.data.to_csv(index=False)
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")


def markdown(table: Table) -> str:
    """A pipe table under its title, notes below; columns padded to line up in a terminal."""
    frame = table.display.astype(str)
    headers = list(frame.columns)
    widths = [max([len(h)] + [len(v) for v in frame[h]]) for h in headers]
    lines = [f"### {table.title}", ""]
    lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for values in frame.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).ljust(w) for v, w in zip(values, widths)) + " |")
    if table.notes:
        lines.append("")
        lines += [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def latex(table: Table, label: str | None = None) -> str:
    """A booktabs table (needs \\usepackage{booktabs, amssymb, amsmath}); notes become LaTeX comments."""
    frame = table.display.astype(str).map(latex_text)
    frame.columns = [latex_text(c) for c in table.display.columns]
    align = "".join("r" if table.display[c].astype(str).str.fullmatch(NUMERIC).all() else "l" for c in table.display)
    text = frame.to_latex(index=False, escape=False, caption=latex_text(table.title), label=label or f"tab:{table.name}",
                          column_format=align, position="t")
    comments = "".join(f"% {note}\n" for note in table.notes)
    return comments + text


NUMERIC = rf"[\d.+\-±†\[\], ]*|{MISSING}|{NOT_APPLICABLE}|{NOT_REPORTED}|{REFERENCE}"
"""Cells of a right-aligned (number) column."""
LOSS = re.compile(r"L(\^\((?P<kind>[SQ])\))?_(?P<name>NT-Xent(-AM)?|AP)")


def latex_text(text: str) -> str:
    """Cell text in LaTeX: the paper's loss names in math, checkmarks, ±, Δ, and escaped specials."""
    parts, last = [], 0
    for match in LOSS.finditer(text):
        parts.append(_escape(text[last:match.start()]))
        kind = f"^{{({match['kind']})}}" if match["kind"] else ""
        parts.append(f"$\\mathcal{{L}}{kind}_{{\\text{{{match['name']}}}}}$")
        last = match.end()
    parts.append(_escape(text[last:]))
    return "".join(parts)


def _escape(text: str) -> str:
    for old, new in (("&", r"\&"), ("%", r"\%"), ("#", r"\#"), ("_", r"\_"),
                     ("{", r"\{"), ("}", r"\}"), ("^", r"\^{}"), ("~", r"\~{}")):
        text = text.replace(old, new)
    for old, new in (("✓", r"\checkmark"), ("✗", r"$\times$"), ("±", r"$\pm$"), ("Δ", r"$\Delta$"),
                     ("–", "--"), ("—", "---"), ("τ", r"$\tau$"), ("†", r"\dag{}")):
        text = text.replace(old, new)
    return text


def write(tables: list[Table], fmt: str, out: str | None, prefix: str) -> list[str]:
    """Print the tables, or write one file per table to `out` (`<prefix>_<table>.<suffix>`); return the paths."""
    if out is None:
        print("\n".join((f"# {t.name}: {t.title}\n" if fmt == "csv" else "") + render(t, fmt, prefix) for t in tables), end="")
        return []
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for table in tables:
        path = folder / f"{prefix}_{table.name}.{SUFFIX[fmt]}"
        path.write_text(render(table, fmt, prefix))
        paths.append(str(path))
    return paths


def frame_text(frame: pd.DataFrame) -> str:
    """A small frame as a Markdown table without title (for the summary)."""
    return markdown(Table("", "", frame, frame)).split("\n", 2)[2]
