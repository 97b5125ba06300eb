"""`python -m analysis report`: a results page from a real study's store: how it was made, summary, tables, figures."""

import re
from pathlib import Path

from analysis.__main__ import main
from analysis.summary import study_summary
from study.tracking.provenance import machine


def test_the_page_shows_the_launch_command_machine_summary_tables_and_small_figures(store, tmp_path, capsys):
    page = tmp_path / "results" / "table2.md"
    args = ["report", store.study, "--tracking-uri", store.uri, "--out", str(page), "--bootstrap", "100"]
    assert main(args) == 0
    written = capsys.readouterr().out.split()
    text = page.read_text()
    assert written[0] == str(page)
    launch = re.search(r"Launch `(paper_table2-\d{8}-\d{6})` \(profile cpu, finished, \d+ min \d+ s wall time", text)
    assert launch, text[:2000]
    assert "python -m study.run paper_table2 --seeds 1,2 --tracking-uri" in text  # the recorded argv
    assert f"- machine (the driver's): {machine()}" in text and "- Ray cluster: 1 node(s), 2 CPU(s)" in text
    assert re.search(r"- code: git commit `[0-9a-f]{40}(-dirty)?`", text)
    assert "python -m analysis " + " ".join(args) in text
    assert study_summary(store.study, store.uri, resamples=100).rstrip() in text, "the summary, as printed"
    assert "### Table 2 — effect of additive margin on MoCo" in text and "ΔEER" in text and "floor" in text
    figures = re.findall(r"!\[[^]]*\]\((table2/[^)]+)\)", text)
    assert {Path(f).suffix for f in figures} == {".png"} and len(figures) >= 3
    for figure in figures:
        data = (page.parent / figure).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < len(data) < 150_000
    assert sorted(str(p) for p in (page.parent / "table2").iterdir()) == sorted(written[1:])


def test_a_page_must_be_a_markdown_file_outside_any_folder_of_that_name(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'absent.db'}"
    assert main(["report", "paper_table1", "--tracking-uri", uri, "--out", str(tmp_path / "page.txt")]) == 2
    assert "a results page is a Markdown file (.md)" in capsys.readouterr().err
    (tmp_path / "page.md").mkdir()
    assert main(["report", "paper_table1", "--tracking-uri", uri, "--out", str(tmp_path / "page.md")]) == 2
    assert f"--out {tmp_path / 'page.md'} is a folder" in capsys.readouterr().err
    assert main(["report", "paper_table1", "--tracking-uri", uri, "--out", str(tmp_path / "new" / "p.md")]) == 2
    assert "no MLflow store at" in capsys.readouterr().err and not (tmp_path / "new" / "p.md").exists()
