"""Named studies: one module per study, each defining `STUDY` (a `Study`); found automatically.

Adding a study is adding a module here. `names()` lists them, `load(name)` returns one.
"""

from __future__ import annotations

import importlib
import pkgutil

from search_spaces._spec import (Asha, Budget, Choice, Float, Int, Param, Reference, Study, describe_config,
                                 matching_reference, meets, native, same_value)

__all__ = ["Asha", "Budget", "Choice", "Float", "Int", "Param", "Reference", "Study", "describe_config", "load",
           "matching_reference", "meets", "names", "native", "same_value"]


def names() -> list[str]:
    """Every study module in this package, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load(name: str) -> Study:
    """The study `name`; KeyError lists the known ones."""
    if name not in names():
        raise KeyError(f"unknown study {name!r}; known studies: {', '.join(names())}")
    study = importlib.import_module(f"{__name__}.{name}").STUDY
    if study.name != name:
        raise ValueError(f"search_spaces/{name}.py defines STUDY named {study.name!r}; it must be {name!r}")
    return study
