"""Launching a study: the plan, the Ray cluster and storage checks, the Tune search and trial driver, the
Ray Train hooks of the worker loop (`worker_hooks`), launch records for `--resume`, the console."""
