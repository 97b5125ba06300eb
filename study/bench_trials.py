"""The fixed cost of a trial: the seconds a `smoke` trial spends outside its training loop, on a local Ray
instance, with the trainer's loop under a Ray Train controller (the baseline) and run in the Tune trial itself
(what single-worker trials do)."""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from typing import Any

import search_spaces
from study.launch import cluster as ray_cluster
from study.launch.plan import build_plan, plan_resources
from trainables.corpus import CACHE_ENV, default_cache_dir, ensure_embedded_corpus


def bench_trial_overhead(trials: int = 3, epochs: int = 1) -> dict[str, Any]:
    """Per path: the wall seconds per trial of `trials` smoke trials run one at a time, the seconds their loops
    report (data loading, training, evaluation), and the difference, the fixed cost per trial."""
    from study.launch.driver import DriverPlan  # heavy: ray.train, torch
    from study.launch.tuner import make_tuner

    ensure_embedded_corpus(log=lambda _: None)
    study = search_spaces.load("smoke")
    result: dict[str, Any] = {"trial_overhead_trials": trials, "trial_overhead_epochs": epochs}
    env = {CACHE_ENV: str(default_cache_dir().resolve())}
    cluster = ray_cluster.connect(None, ray_cluster.worker_env(None, env), log=lambda _: None)
    try:
        for name, ray_train in (("ray_train_controller", True), ("in_trial", False)):
            # Tune's progress goes to stderr: stdout holds the JSON figures
            with tempfile.TemporaryDirectory() as storage, contextlib.redirect_stdout(sys.stderr):
                plan = build_plan(study, "cpu", {}, {"epochs": epochs}, num_samples=trials)
                plan.storage, plan.experiment = storage, f"overhead-{name}"
                resources = plan_resources(cluster.cpus, 0, trials, max_concurrent=1)
                driver = DriverPlan(study=study.name, metric=study.metric, mode=study.mode, searched=plan.searched,
                                    conditions=plan.conditions, workers_per_trial=1, cpus_per_worker=1.0,
                                    gpus_per_worker=0, train_storage=f"{storage}/{plan.experiment}",
                                    ray_train=ray_train)
                started = time.perf_counter()
                grid = make_tuner(plan, resources, driver, restore=False).fit()
                wall = (time.perf_counter() - started) / trials
                loop = sum(r.metrics["seconds"] for r in grid) / trials
            result[f"trial_wall_s_{name}"] = wall
            result[f"trial_loop_s_{name}"] = loop
            result[f"trial_fixed_cost_s_{name}"] = wall - loop
    finally:
        ray_cluster.disconnect()
    result["trial_fixed_cost_saved_s"] = (result["trial_fixed_cost_s_ray_train_controller"]
                                          - result["trial_fixed_cost_s_in_trial"])
    return result
