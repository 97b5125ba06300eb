"""MLflow's system metrics (CPU, memory, disk, network; GPU utilisation and memory where NVML is present) on a
trial's run, sampled by MLflow's own monitor in a background thread of the trial's rank-0 process."""

from __future__ import annotations

import logging

SAMPLING_S = 10.0
"""Seconds between samples (MLflow's default); each sample is one log batch. Collecting one took 0.12 ms on this
project's 2-core machine (no GPU; measured over 50 samples)."""


def start_system_metrics(tracking_uri: str, run_id: str):
    """A started `SystemMetricsMonitor` logging `system/*` metrics to run `run_id` (stop it with
    `stop_system_metrics`); None when MLflow cannot monitor here (psutil missing). It stops by itself when it
    cannot read the run (e.g. the tracking server is down)."""
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
    except ImportError:
        return None
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # its start/stop lines on every trial
    monitor = SystemMetricsMonitor(run_id, sampling_interval=SAMPLING_S, samples_before_logging=1,
                                   resume_logging=True, tracking_uri=tracking_uri)
    monitor.start()
    return monitor


def stop_system_metrics(monitor) -> None:
    """Stop `monitor`, first logging what it sampled since its last batch: a trial shorter than `SAMPLING_S`
    still gets its sample from the start."""
    try:
        pending = monitor.aggregate_metrics()
        if pending:
            monitor.publish_metrics(pending)
    finally:
        monitor.finish()
