"""Whether a launch's trials fit in its GPUs' memory: the largest trial the study can draw, estimated
(`trainables.gpu_memory`), times the trials sharing a GPU, against the memory of the cluster's GPUs."""

from __future__ import annotations

import itertools
from typing import Any

from search_spaces import Choice
from study.launch.plan import Plan, PlanError, Resources

MEMORY_KEYS = ("framework", "projector", "projector_dim", "projector_hidden_dim", "queue_size", "batch_size",
               "embedding_dim", "n_mels", "crop_seconds", "sample_rate", "precision", "encoder", "symmetric")
"""Config keys that change a worker's GPU memory; searched values of the others do not matter here."""
USABLE_FRACTION = 0.95
"""Of a GPU's memory, what trials may plan to use (the rest: other processes' contexts, rounding)."""


def largest_configs(plan: Plan) -> list[dict[str, Any]]:
    """Every combination of the study's searched memory-relevant values (numeric ranges at their top)."""
    axes: list[list[tuple[str, Any]]] = []
    for param in plan.study.search_for(plan.profile):
        if param.name not in MEMORY_KEYS:
            continue
        values = param.domain.values if isinstance(param.domain, Choice) else (param.domain.high,)
        axes.append([(param.name, value) for value in values])
    return [{**plan.base, **dict(combo)} for combo in itertools.product(*axes)]


def worker_memory(plan: Plan, resources: Resources):
    """The largest estimate (`GpuMemory`) over the configs the study can draw, per worker."""
    from trainables.config import TrainConfig  # heavy: torch
    from trainables.gpu_memory import estimate_gpu_memory

    estimates = []
    for values in largest_configs(plan):
        cfg = TrainConfig.from_dict(values)
        estimates.append(estimate_gpu_memory(cfg, -(-cfg.batch_size // resources.workers_per_trial)))
    return max(estimates, key=lambda estimate: estimate.total)


def check_fit(trials_per_gpu: int, estimate, gpu_bytes: int) -> None:
    """PlanError, naming the numbers and the largest count that fits, when `trials_per_gpu` workers of
    `estimate` (GpuMemory) do not fit in a GPU of `gpu_bytes`."""
    usable = gpu_bytes * USABLE_FRACTION
    if trials_per_gpu * estimate.total <= usable:
        return
    fits = int(usable // estimate.total)
    advice = (f"use --trials-per-gpu {fits} or less" if fits >= 1 else
              "use a smaller batch_size (--set batch_size=N, or more --workers-per-trial) or bf16 (--set precision=bf16)")
    raise PlanError(f"{trials_per_gpu} trial(s) per GPU would need {trials_per_gpu} x {estimate.describe()}; "
                    f"the GPUs have {gpu_bytes / 2**30:.1f} GiB ({USABLE_FRACTION:.0%} usable): {advice}")


def probe_gpu_bytes(timeout: float = 60.0) -> int | None:
    """Total memory of one of the cluster's GPUs, read by a task that holds a whole GPU (run before any trial);
    None when no GPU came free within `timeout` seconds."""
    import ray

    @ray.remote(num_gpus=1, num_cpus=0)
    def total_memory() -> int:
        import torch

        return int(torch.cuda.get_device_properties(0).total_memory)

    task = total_memory.remote()
    try:
        return int(ray.get(task, timeout=timeout))
    except ray.exceptions.GetTimeoutError:
        ray.cancel(task, force=True)
        return None
