"""The tables' rows and labels are the paper's (paper.md section 1.1), and the paper column holds its numbers."""

from __future__ import annotations

import pytest

import search_spaces
from analysis.table_layouts import TABLE4, layout, loss_label, names
from tests.analysis.paper import PAPER_MD, TABLES, parse_paper_tables


@pytest.mark.skipif(not PAPER_MD.is_file(), reason=f"{PAPER_MD} is not here")
def test_the_tests_transcription_is_paper_md():
    assert parse_paper_tables(PAPER_MD.read_text()) == TABLES


@pytest.mark.parametrize("number, name", [(1, "paper_table1"), (2, "paper_table2"), (3, "paper_table3"), (4, TABLE4)])
def test_rows_labels_and_paper_column_are_the_papers(number, name):
    spec = layout(name)
    assert [(*row.labels, *row.paper) for row in spec.rows] == TABLES[number]


def test_column_labels_are_the_papers():
    assert layout("paper_table1").columns == ("Loss", "Sym.", "Margin")
    assert layout("paper_table2").columns == ("Loss", "Margin")
    assert layout("paper_table3").columns == ("Class collisions", "Class imbalance")
    assert layout(TABLE4).columns == ("Method", "Loss")
    assert layout(TABLE4).studies == ("paper_table1", "paper_table2")


def test_a_grid_table_has_one_row_per_grid_point_with_seeds_pooled():
    study = search_spaces.load("paper_table1")
    rows = layout("paper_table1").rows
    assert [dict(r.config) for r in rows] == [dict(p) for p in study.grid]
    assert all(r.study == "paper_table1" and "seed" not in r.config for r in rows)


def test_a_search_study_table_has_its_paper_rows():
    study = search_spaces.load("margin_sweep")
    spec = layout("margin_sweep")
    assert [dict(r.config) for r in spec.rows] == [dict(ref.config) for ref in study.references]
    assert [r.reference for r in spec.rows] == list(study.references)
    assert set(spec.columns) == {"framework", "symmetric", "margin", "temperature"}


def test_loss_names_follow_the_paper():
    assert loss_label({"framework": "simclr", "symmetric": False, "margin": 0.0}) == "L_NT-Xent"
    assert loss_label({"framework": "simclr", "symmetric": True, "margin": 0.2}) == "L^(S)_NT-Xent-AM"
    assert loss_label({"framework": "moco", "symmetric": True, "margin": 0.0}) == "L^(Q)_NT-Xent"


def test_every_study_and_table4_can_be_tabulated():
    assert names() == sorted(search_spaces.names() + [TABLE4])
    for name in names():
        assert layout(name).title
