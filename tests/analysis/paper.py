"""Paper A's tables (paper.md section 1.1) transcribed for the tests, and a parser of paper.md to check them."""

from __future__ import annotations

import re
from pathlib import Path

PAPER_MD = Path(__file__).resolve().parents[3] / "shared" / "reference" / "paper.md"

TABLES = {
    1: [("L_NT-Xent", "✗", "0", 8.98, 0.6714),
        ("L^(S)_NT-Xent", "✓", "0", 8.41, 0.6235),
        ("L^(S)_NT-Xent-AM", "✓", "0.05", 8.35, 0.6098),
        ("L^(S)_NT-Xent-AM", "✓", "0.1", 7.85, 0.6168),
        ("L^(S)_NT-Xent-AM", "✓", "0.2", 8.13, 0.6211)],
    2: [("L^(Q)_NT-Xent", "0", 9.59, 0.6974),
        ("L^(Q)_NT-Xent-AM", "0.1", 9.36, 0.6403)],
    3: [("✓", "✓", 7.85, 0.6168),
        ("✗", "✓", 7.95, 0.6241),
        ("✗", "✗", 8.41, 0.6390)],
    4: [("AP [21] (Huh et al., AAT, NeurIPS-W 2020)", "L_AP", 9.56, None),
        ("SimCLR [11] (Zhang et al., ICASSP 2021)", "L_AP", 8.28, 0.6100),
        ("MoCo [10] (Xia et al., ICASSP 2021)", "L_NT-Xent", 8.23, 0.5900),
        ("SimCLR (ours)", "L^(S)_NT-Xent-AM", 7.85, 0.6168),
        ("MoCo (ours)", "L^(Q)_NT-Xent-AM", 9.36, 0.6403)],
}
"""Per table: label cells, then EER (%) and minDCF_0.01 (None = not reported)."""


def parse_paper_tables(text: str) -> dict[int, list[tuple]]:
    """Tables 1-4 of section 1.1 of paper.md, in the form of `TABLES`."""
    section = text.split("### 1.1", 1)[1].split("### 1.2", 1)[0]
    tables = {}
    parts = re.split(r"\*\*Table (\d) ", section)
    for number, body in zip(parts[1::2], parts[2::2]):
        rows = [line for line in body.splitlines() if line.startswith("|")][2:]  # header and separator
        parsed = []
        for line in rows:
            cells = [c.strip().replace("**", "") for c in line.strip("|").split("|")]
            *labels, eer, dcf = cells
            parsed.append((*labels, float(eer), None if dcf in ("–", "-", "—") else float(dcf)))
        tables[int(number)] = parsed
    return tables
