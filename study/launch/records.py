"""The record of a launch, `launch.json` next to its Tune experiment: what `--resume` needs to continue it exactly."""

from __future__ import annotations

import json
import sys
from typing import Any

import search_spaces
from study.launch.plan import Plan, PlanError, Resources, select_rows
from study.launch.storage import read_text, subfolders, write_text

LAUNCH_FILE = "launch.json"


def save_launch(plan: Plan, resources: Resources, driver, assume_shared: bool) -> None:
    """Record the launch next to its Tune experiment, so `--resume` continues it exactly."""
    driver_record = driver.to_dict()
    record = {
        "study": plan.study.name, "profile": plan.profile, "base": plan.base, "num_samples": plan.num_samples,
        "seeds": list(plan.seeds), "rows": list(plan.rows), "overrides": plan.overrides, "storage": plan.storage,
        "experiment": plan.experiment, "tracking_uri": plan.tracking_uri, "address": plan.address,
        "resources": vars(resources), "driver": driver_record, "tracking": driver_record["tracking"],
        "assume_shared_storage": assume_shared, "argv": sys.argv,
    }
    write_text(f"{plan.storage}/{plan.experiment}/{LAUNCH_FILE}", json.dumps(record, indent=1, default=str) + "\n")


def find_launch(storage: str, name: str) -> dict[str, Any]:
    """The record of the newest launch of study `name` under `storage` that Tune can restore."""
    from ray.tune import Tuner  # heavy: ray.tune (~1 s), only when resuming

    for folder in reversed(subfolders(storage, f"{name}-")):
        path = f"{storage}/{folder}"
        if Tuner.can_restore(path):
            try:
                return json.loads(read_text(f"{path}/{LAUNCH_FILE}"))
            except FileNotFoundError:
                continue
    raise PlanError(f"no launch of study {name} to resume under {storage}")


def plan_from_record(record: dict[str, Any]) -> Plan:
    """The plan a recorded launch ran."""
    rows = tuple(record.get("rows", ()))  # launches recorded before --rows ran the whole grid
    return Plan(
        study=select_rows(search_spaces.load(record["study"]), rows), profile=record["profile"],
        base=record["base"], num_samples=record["num_samples"], seeds=tuple(record["seeds"]), rows=rows, overrides=record["overrides"], storage=record["storage"],
        experiment=record["experiment"], tracking_uri=record["tracking_uri"], address=record["address"],
    )


def record_resources(record: dict[str, Any]) -> Resources:
    """The resources a recorded launch ran with."""
    return Resources(**record["resources"])
