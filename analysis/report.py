"""A study's results page: one Markdown file with how the runs were made (the launch commands, code, machine,
wall time), the summary, the tables and the figures (small PNGs beside it), all read from the MLflow store."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Sequence

import pandas as pd

import search_spaces
from analysis.bootstrap import RESAMPLES
from analysis.render import markdown
from analysis.runs import Runs, load_runs
from analysis.summary import study_summary
from analysis.tables import study_tables
from study.launch.storage import read_text

LAUNCH_FILE = "launch.json"
PAGE_DPI = 80
"""Figure resolution of a results page: small PNGs that still read on a screen."""


def study_report(name: str, uri: str | None, page: str | Path, launch: str | None = None,
                 resamples: int = RESAMPLES, command: Sequence[str] = ()) -> list[Path]:
    """Write the results page of study `name` to `page` (Markdown) and its figures into the folder beside it
    named after the page; `command` is the argv that made the page, shown on it. Returns the files written."""
    from analysis.figures import study_figures  # heavy: matplotlib

    page = Path(page)
    runs = load_runs(name, uri, launch)
    study = search_spaces.load(name)
    tables = study_tables(name, uri, launch, resamples)
    summary = study_summary(name, uri, launch, resamples=resamples)
    folder = page.with_suffix("")
    figures, notes = study_figures(name, uri, folder, launch, log=False, formats=("png",), dpi=PAGE_DPI)
    lines = [f"# {name} on {_data_name(runs)}", "", study.description + ".", "",
             "Generated from the study's MLflow runs by `python -m analysis report`; every number below is "
             "reproducible from the commands shown.", "", "## How it was made", ""]
    lines += _provenance(runs)
    if command:
        lines += ["", "This page:", "", "```", "python -m analysis " + shlex.join(command), "```"]
    lines += ["", "## Summary", "", "```text", summary.rstrip(), "```", "", "## Tables", ""]
    lines += [markdown(table) for table in tables]
    lines += ["## Figures", ""]
    for path in figures:
        lines += [f"![{path.stem}]({folder.name}/{path.name})", ""]
    lines += [f"- {note}" for note in notes if not note.startswith("figures logged")]
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("\n".join(lines).rstrip() + "\n")
    return [page, *figures]


def _data_name(runs: Runs) -> str:
    roots = sorted({root for root in runs.table["data_root"].dropna() if root} if "data_root" in runs.table else set())
    return ", ".join(Path(root).name for root in roots) or "the embedded corpus"


def _provenance(runs: Runs) -> list[str]:
    """Per launch: its command, code, machine, cluster, status and wall time."""
    lines = []
    for _, launch in runs.launches.iterrows():
        wall = (launch["end"] - launch["start"]).total_seconds() if pd.notna(launch["end"]) else math.nan
        lines += [f"Launch `{launch['launch']}` (profile {launch['profile']}, {str(launch['status']).lower()}, "
                  f"{_duration(wall)} wall time, started {launch['start']:%Y-%m-%d %H:%M} UTC):", ""]
        lines += [f"- code: git commit `{_text(launch['git_commit'])}`",
                  f"- machine (the driver's): {_text(launch['machine'])}",
                  f"- Ray cluster: {_text(launch['cluster'])}"]
        argv = _recorded_argv(launch["results"])
        if argv:
            lines += ["", "```", "python -m study.run " + shlex.join(argv), "```", ""]
        else:
            lines += [f"- command: not recorded (no readable {LAUNCH_FILE} in {_text(launch['results'])})", ""]
    return lines


def _recorded_argv(results: object) -> list[str] | None:
    """The command-line arguments a launch recorded in its `launch.json` (None when it cannot be read)."""
    if not isinstance(results, str) or not results:
        return None
    try:
        argv = json.loads(read_text(f"{results}/{LAUNCH_FILE}")).get("argv")
    except (OSError, ValueError):
        return None
    return list(argv[1:]) if isinstance(argv, list) and argv else None


def _text(value: object) -> str:
    return value if isinstance(value, str) and value else "not recorded"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unknown"
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours} h {rest // 60} min" if hours else f"{rest // 60} min {rest % 60} s"
