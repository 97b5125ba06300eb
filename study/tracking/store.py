"""The MLflow store: its URI, whether it can be reached, its client, and one experiment per study."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from mlflow.tracking import MlflowClient


class TrackingError(RuntimeError):
    """The MLflow store cannot be used; the message says which and what to do."""


def resolve_uri(uri: str | None, cwd: str | Path | None = None) -> str:
    """The tracking URI to use: `uri`, else $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db; file paths absolute."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    base = Path(cwd or os.getcwd())
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):]
        return "sqlite:///" + str((base / path).resolve()) if not path.startswith("/") else uri
    if "://" not in uri:
        return str((base / uri).resolve())
    return uri


def store_path(uri: str) -> Path | None:
    """The local file or folder a file-based store lives in (None for a server)."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):])
    if uri.startswith("file://"):
        return Path(urlparse(uri).path)
    if "://" not in uri:
        return Path(uri)
    return None


def check_reachable(uri: str, timeout: float = 3.0) -> None:
    """Raise TrackingError quickly when a tracking server does not accept connections."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            pass
    except OSError as error:
        raise TrackingError(
            f"the MLflow tracking server {uri} cannot be reached ({error.strerror or error}); "
            "start it, or pass another --tracking-uri (default: a SQLite store in the working directory)"
        ) from None


QUICK_FAILURE = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
"""MLflow's HTTP retry settings (read per request) unless the user set them: a call to a server that is down fails
in about 30 s instead of retrying for minutes; the callers retry on their own terms."""


def client(uri: str):
    """The one MlflowClient factory of the project (study and analysis alike)."""
    for key, value in QUICK_FAILURE.items():
        os.environ.setdefault(key, value)
    return MlflowClient(tracking_uri=uri)


def prepare_experiment(uri: str, name: str) -> str:
    """Create the store (once, here) and the study's experiment if needed; return the experiment id.

    File-based stores keep artifacts in `mlruns/` next to the database, by absolute path, so that every worker
    writes to the same place whatever its working directory.
    """
    check_reachable(uri)
    local = store_path(uri)
    if local is not None:
        local.parent.mkdir(parents=True, exist_ok=True)
    mlflow_client = client(uri)
    try:
        found = mlflow_client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
    except Exception as error:
        raise TrackingError(f"the MLflow store {uri} cannot be used: {error}") from error
    artifacts = (local.parent / "mlruns").as_uri() if local is not None and uri.startswith("sqlite:") else None
    try:
        return mlflow_client.create_experiment(name, artifact_location=artifacts)
    except Exception as error:  # e.g. created meanwhile by a concurrent launch
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise TrackingError(f"the MLflow store {uri} cannot be used: {error}") from error
        return found.experiment_id


def ui_command(uri: str) -> str:
    """The exact command that browses the store."""
    local = store_path(uri)
    if local is None:
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri}"

