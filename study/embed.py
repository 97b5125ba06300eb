"""Turn audio files into speaker embeddings with a trained encoder.

  python -m study.embed MODEL FILE [FILE ...] --out embeddings.npz

MODEL is a checkpoint folder, or an MLflow model URI: `runs:/<run id>/encoder` (a trial's logged encoder) or
`models:/<name>/<version>` (a registered one). The output holds `embeddings` (N, D), unit L2 norm, and `files`.
From Python: `trainables.embedder.load_embedder(folder)` or `mlflow.pytorch.load_model(uri)`, then
`trainables.embedder.embed_files(embedder, files)`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from study.launch.console import plain_unless_terminal
from study.tracking.store import TrackingError, resolve_uri
from trainables.audio import AudioError
from trainables.checkpoint import STATE_FILE, CheckpointError, checkpoint_in
from trainables.embedder import Embedder, embed_files, load_embedder
from trainables.loop import local_device


def parser() -> argparse.ArgumentParser:
    first, rest = __doc__.split("\n", 1)
    p = argparse.ArgumentParser(prog="python -m study.embed", description=first, epilog=rest,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="checkpoint folder, runs:/<run id>/encoder or models:/<name>/<version>")
    p.add_argument("files", nargs="+", help="audio files")
    p.add_argument("--out", required=True, help="output .npz (embeddings, files)")
    p.add_argument("--mode", choices=("full", "segments"), default="full",
                   help="one whole-utterance embedding per file, or the mean of 10 x 3.515 s segments (default: full)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda (default: auto)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI for runs:/ and models:/ (default: "
                   "$MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)")
    return p


def load_model(model: str, tracking_uri: str | None = None) -> Embedder:
    """The encoder a checkpoint folder or an MLflow model URI names."""
    if "://" not in model and not model.startswith(("runs:", "models:")):
        folder = Path(model)
        found = checkpoint_in(folder)
        if found is None:
            raise FileNotFoundError(f"{folder} is not a checkpoint folder (no {STATE_FILE} in it or under it)")
        return load_embedder(found)[0]
    import mlflow  # heavy: only for MLflow models
    import mlflow.pytorch

    mlflow.set_tracking_uri(resolve_uri(tracking_uri))
    try:
        return mlflow.pytorch.load_model(model, map_location="cpu").eval()
    except mlflow.exceptions.MlflowException as error:
        raise TrackingError(f"cannot load model {model}: {str(error.message).splitlines()[0]}") from None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    plain_unless_terminal()
    try:
        embedder = load_model(args.model, args.tracking_uri)
        vectors = embed_files(embedder, args.files, args.mode, device=local_device(args.device))
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out, embeddings=vectors, files=np.array([str(f) for f in args.files]))
    except (TrackingError, CheckpointError, AudioError, FileNotFoundError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{len(args.files)} embedding(s) of dimension {vectors.shape[1]} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
