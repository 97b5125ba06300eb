"""Launching a study: the plan, the Ray cluster and storage checks, the Tune search and trial driver, the console."""
