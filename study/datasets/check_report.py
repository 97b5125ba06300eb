"""What the data check found: counts, one summary line per list and folder, and findings (errors and warnings),
each with every path concerned."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

SHOWN = 10
"""Paths shown per kind of problem (all of them go to `--report`)."""


@dataclass
class Finding:
    """One kind of problem: a headline and every path (or line) concerned."""

    error: bool
    headline: str
    items: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    """What `check_data` found; `ok` is False when training would fail or its results would be invalid."""

    summary: list[str] = field(default_factory=list)
    """One line per list, folder and the sample rates found."""
    findings: list[Finding] = field(default_factory=list)
    utterances: int = 0
    """Training utterances listed (the first `max_utterances` of them)."""
    speakers: int = 0
    """Distinct speaker labels among them."""
    trials: int = 0
    """Trials listed."""
    files_checked: int = 0
    """Distinct audio files opened (training, trial, noise and RIR files together)."""
    train_hours: float = 0.0
    """Total duration of the readable training files, per list entry."""
    trial_hours: float = 0.0
    """Total duration of the readable trial files."""

    @property
    def ok(self) -> bool:
        return not any(f.error for f in self.findings)

    def add(self, error: bool, headline: str, items: list[str] | None = None) -> None:
        self.findings.append(Finding(error, headline, list(items or [])))

    def format(self, shown: int = SHOWN) -> str:
        """Counts first, then each problem with its first `shown` paths."""
        errors = sum(f.error for f in self.findings)
        head = "check: ok" if self.ok else f"check: FAILED: {errors} problem(s) that stop training or invalidate its results"
        lines = [head, *self.summary]
        for finding in self.findings:
            lines.append(f"{'ERROR' if finding.error else 'warning'}: {finding.headline}")
            lines += [f"  {item}" for item in finding.items[:shown]]
            if len(finding.items) > shown:
                lines.append(f"  ... and {len(finding.items) - shown:,} more")
        return "\n".join(lines)

    def full_text(self) -> str:
        """Every finding with every path, for `--report`."""
        return self.format(shown=sys.maxsize) + "\n"
