"""The rows and label columns of each table: the paper's layouts (paper.md section 1.1) and a generic one.

A row names the configuration it reports (`config`), the study whose runs fill it, and the paper's result for
it (`reference`, taken from the study module). Table 4 spans two studies and adds literature rows quoted from
paper.md; those are the only numbers written here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import search_spaces
from analysis.render import NOT_REPORTED
from search_spaces import Reference, Study, meets, native

CHECK, CROSS = "✓", "✗"
TABLE4 = "paper_table4"
"""The comparison table's name: not a study, it reads the runs of paper_table1 and paper_table2."""


@dataclass(frozen=True)
class Row:
    """One table row: its labels, and the runs (of `study`, matching `config`) or the literature it reports."""

    labels: tuple[str, ...]
    study: str | None
    config: Mapping[str, Any] = field(default_factory=dict)
    reference: Reference | None = None
    quoted: tuple[float, float | None] | None = None
    """(EER, minDCF) of a literature row, quoted from the paper; such a row has no runs of ours."""

    @property
    def paper(self) -> tuple[float | None, float | None]:
        if self.quoted is not None:
            return self.quoted
        if self.reference is not None:
            return self.reference.eer, self.reference.min_dcf
        return None, None


@dataclass(frozen=True)
class Layout:
    """A table: name (file stem), title, label columns, rows, and the studies whose runs it reads."""

    name: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[Row, ...]
    studies: tuple[str, ...]
    exhaustive: bool = False
    """The rows are every configuration the study runs (a grid): a run matching none is worth a note."""
    reference: int | None = None
    """The row every other row is compared with (paired differences), if the table has one."""


Labeller = Callable[[Mapping[str, Any]], str]


def loss_label(config: Mapping[str, Any]) -> str:
    """The paper's name of the loss: L^(Q) for MoCo, L^(S) for symmetric SimCLR; -AM when a margin applies."""
    if config["framework"] == "moco":
        prefix = "L^(Q)"
    else:
        prefix = "L^(S)" if config["symmetric"] else "L"
    return f"{prefix}_NT-Xent" + ("-AM" if config["margin"] > 0 else "")


def mark(flag: Any) -> str:
    return CHECK if bool(flag) else CROSS


def value_label(value: Any) -> str:
    """A config value as a table shows it."""
    value = native(value)
    if isinstance(value, bool):
        return mark(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


LABELS: dict[str, tuple[tuple[str, Labeller], ...]] = {
    "paper_table1": (
        ("Loss", loss_label),
        ("Sym.", lambda c: mark(c["symmetric"])),
        ("Margin", lambda c: value_label(float(c["margin"]))),
    ),
    "paper_table2": (("Loss", loss_label), ("Margin", lambda c: value_label(float(c["margin"])))),
    "paper_table3": (
        ("Class collisions", lambda c: mark(not c["prevent_class_collisions"])),
        ("Class imbalance", lambda c: mark(c["max_utterances_per_speaker"] == 0)),
    ),
}
"""Label columns of the paper's tables, computed from a row's (full) config."""

TITLES = {
    "paper_table1": "Table 1 — effect of the symmetric loss and of additive margin on SimCLR (paper A)",
    "paper_table2": "Table 2 — effect of additive margin on MoCo (paper A)",
    "paper_table3": "Table 3 — effect of class collisions and class imbalance (SimCLR, L^(S)_NT-Xent-AM, m = 0.1; paper A)",
    TABLE4: "Table 4 — comparison with other SSL contrastive methods (paper A)",
}

LITERATURE = (
    ("AP [21] (Huh et al., AAT, NeurIPS-W 2020)", "L_AP", 9.56, None),
    ("SimCLR [11] (Zhang et al., ICASSP 2021)", "L_AP", 8.28, 0.6100),
    ("MoCo [10] (Xia et al., ICASSP 2021)", "L_NT-Xent", 8.23, 0.5900),
)
"""Table 4's literature rows, quoted from paper.md section 1.1: method, loss, EER (%), minDCF_0.01."""

OURS = (("SimCLR (ours)", "paper_table1", {"symmetric": True, "margin": 0.1}),
        ("MoCo (ours)", "paper_table2", {"margin": 0.1}))
"""Table 4's measured rows: method, the study whose runs fill it, the configuration."""

REFERENCE_ROWS: dict[str, dict[str, Any]] = {
    "paper_table1": {"symmetric": True, "margin": 0.0},
    "paper_table2": {"margin": 0.0},
    "paper_table3": {"prevent_class_collisions": False, "max_utterances_per_speaker": 0},
}
"""Per paper table, the config of the row the others are compared with (paired differences, row - reference).
Table 1: the symmetric loss at m = 0, so the non-symmetric row measures the symmetric loss and the margin rows
the margin, each one change away (the issue's example). Table 2: MoCo at m = 0, the row without margin. Table 3:
the paper's own training (SimCLR L^(S) m = 0.1 as in Table 1, collisions and imbalance left in), so each other
row measures removing collisions, then imbalance too. Table 4 has none: its question is the literature, which
has no scores of ours."""


def names() -> list[str]:
    """Everything `python -m analysis tables` accepts: every study, and the comparison table."""
    return sorted(search_spaces.names() + [TABLE4])


def layout(name: str) -> Layout:
    """The table of study `name` (its paper layout when it has one), or Table 4."""
    if name == TABLE4:
        return table4()
    study = search_spaces.load(name)
    configs = row_configs(study)
    labellers = labellers_for(study, configs)
    rows = tuple(
        Row(tuple(label(study.full_config(c)) for _, label in labellers), study.name, c, study.matching_reference(c))
        for c in configs
    )
    title = TITLES.get(study.name, f"{study.name} — {study.description}")
    reference = REFERENCE_ROWS.get(study.name)
    index = next((i for i, c in enumerate(configs) if c == reference), None) if reference is not None else None
    return Layout(study.name, title, tuple(column for column, _ in labellers), rows, (study.name,), bool(study.grid),
                  index)


def table4() -> Layout:
    rows = [Row((method, loss), None, quoted=(eer, dcf)) for method, loss, eer, dcf in LITERATURE]
    for method, name, config in OURS:
        study = search_spaces.load(name)
        rows.append(Row((method, loss_label(study.full_config(config))), name, config, study.matching_reference(config)))
    return Layout(TABLE4, TITLES[TABLE4], ("Method", "Loss"), tuple(rows), tuple(name for _, name, _ in OURS))


def row_configs(study: Study) -> list[dict[str, Any]]:
    """The configurations a study's table reports: its grid points (seeds pooled), else its paper rows."""
    if study.grid:
        configs: list[dict[str, Any]] = []
        for point in study.grid:
            config = {k: v for k, v in point.items() if k != "seed"}
            if config not in configs:
                configs.append(config)
        return configs
    return [dict(ref.config) for ref in study.references]


def labellers_for(study: Study, configs: list[Mapping[str, Any]]) -> tuple[tuple[str, Labeller], ...]:
    """The paper's label columns for a paper study, else one column per key the rows set."""
    if study.name in LABELS:
        return LABELS[study.name]
    keys: list[str] = []
    for config in configs:
        keys += [k for k in config if k not in keys]
    return tuple((key, _key_labeller(key)) for key in keys)


def run_labellers(study: Study, profile: str | None = None) -> tuple[tuple[str, Labeller], ...]:
    """Label columns for single runs: the paper's (grid studies) or the searched keys, conditions respected."""
    if study.grid:
        return labellers_for(study, row_configs(study))
    conditions = study.conditions(profile)
    return tuple((key, _conditional_labeller(key, conditions.get(key, {}))) for key in study.searched_keys(profile))


def _key_labeller(key: str) -> Labeller:
    return lambda config: value_label(config[key])


def _conditional_labeller(key: str, when: Mapping[str, Any]) -> Labeller:
    def label(config: Mapping[str, Any]) -> str:
        return value_label(config[key]) if meets(config, when) else NOT_REPORTED

    return label
