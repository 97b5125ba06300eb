"""Markdown, LaTeX (booktabs) and CSV renderings of a table."""

from __future__ import annotations

import io
import math

import pandas as pd

from analysis.render import Table, latex, latex_text, markdown, mean_std, number, render


def small_table() -> Table:
    data = pd.DataFrame({"Loss": ["L^(S)_NT-Xent-AM", "L_NT-Xent"], "Sym.": ["✓", "✗"], "eer_mean": [7.5, math.nan]})
    display = pd.DataFrame({"Loss": ["L^(S)_NT-Xent-AM", "L_NT-Xent"], "Sym.": ["✓", "✗"],
                            "EER (%) ours": ["7.50 ± 0.20", "missing"]})
    return Table("table", "Table 1 — SimCLR", data, display, ["a note"])


def test_markdown_is_an_aligned_pipe_table_with_title_and_notes():
    text = markdown(small_table())
    lines = text.splitlines()
    assert lines[0] == "### Table 1 — SimCLR"
    rows = [line for line in lines if line.startswith("|")]
    assert len(rows) == 4 and len({len(r) for r in rows}) == 1
    assert "| L_NT-Xent " in text and "missing" in text and "- a note" in text


def test_latex_uses_booktabs_rules_and_the_papers_notation():
    text = latex(small_table())
    assert "\\toprule" in text and "\\midrule" in text and "\\bottomrule" in text
    assert "$\\mathcal{L}^{(S)}_{\\text{NT-Xent-AM}}$" in text and "$\\mathcal{L}_{\\text{NT-Xent}}$" in text
    assert "\\checkmark" in text and "$\\times$" in text and "$\\pm$" in text and "EER (\\%)" in text
    assert "% a note" in text and "\\caption{Table 1 --- SimCLR}" in text


def test_latex_escapes_specials():
    assert latex_text("50% a_b & #1") == "50\\% a\\_b \\& \\#1"


def test_csv_is_the_numbers():
    back = pd.read_csv(io.StringIO(render(small_table(), "csv")))
    assert list(back.columns) == ["Loss", "Sym.", "eer_mean"]
    assert back["eer_mean"].iloc[0] == 7.5 and math.isnan(back["eer_mean"].iloc[1])


def test_cells_show_missing_values_as_missing():
    assert mean_std(math.nan, math.nan, 0, 2) == "missing"
    assert mean_std(7.456, math.nan, 1, 2) == "7.46"
    assert mean_std(7.456, 0.1234, 3, 2) == "7.46 ± 0.12"
    assert number(None, 4, "–") == "–" and number(-0.25, 2, "–", signed=True) == "-0.25"
