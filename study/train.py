"""Train one configuration in-process (no Ray): `python -m study.train [options] [--set key=value ...]`.

Shows progress and prints the final metrics as one JSON object on its last line.
With no data options it trains on the embedded corpus (generated once, cached). `--dataset voxceleb2` with a
root prepared by `python -m study.prepare` is paper A's setup: the paper profile, its lists and folders.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from study.cli_checks import device_problem, output_folder_problem
from study.data_options import add_data_options, data_overrides
from study.datasets.check import check_data
from study.datasets.root import DATASETS, PrepareError, dataset_paths
from trainables.audio import AudioError
from trainables.checkpoint import CheckpointError
from trainables.config import PROFILES, ConfigError, TrainConfig, build_config, parse_override
from trainables.data_paths import resolve_data
from trainables.dataset import DataError
from trainables.hooks import LocalCheckpoints
from trainables.loop import Runtime, train
from trainables.manifest import ManifestError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m study.train", description=__doc__.split("\n")[0])
    p.add_argument("--profile", choices=sorted(PROFILES), help="config profile (default: cpu; paper with --dataset)")
    add_data_options(p)
    p.add_argument("--dataset", choices=sorted(DATASETS),
                   help="a dataset prepared in --data-root by study.prepare: its lists and folders, paper profile")
    p.add_argument("--max-utterances", type=int, help="train on the first N utterances of the list only")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    p.add_argument("--output", help="folder for checkpoints (default: a temporary folder)")
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints already in --output")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--preflight", action="store_true", help="only check the lists and audio files, then exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    overrides: dict[str, object] = data_overrides(args)
    if args.max_utterances is not None:
        overrides["max_utterances"] = args.max_utterances
    profile = args.profile or ("paper" if args.dataset else "cpu")
    problem = device_problem(args.device) or (output_folder_problem(args.output, "--output") if args.output else None)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        if args.dataset:
            if not args.data_root:
                raise PrepareError("--dataset needs --data-root, the folder prepared by `python -m study.prepare`")
            overrides.update(dataset_paths(args.dataset, args.data_root, overrides))
        overrides.update(dict(parse_override(text) for text in args.set))
        cfg = build_config(profile, overrides)
    except (ConfigError, PrepareError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.preflight:
        try:
            return _preflight(cfg)
        except (FileNotFoundError, DataError) as error:  # no data root folder, no writable corpus cache
            print(f"error: {error}", file=sys.stderr)
            return 2

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="margin-study-train-") as tmp:
        hooks = LocalCheckpoints(args.output or tmp, resume=not args.no_resume)
        try:
            metrics = train(cfg, Runtime(device=args.device), hooks)
        except CheckpointError as error:
            print(f"error: {error}; or rerun with --no-resume", file=sys.stderr)
            return 2
        except (DataError, ManifestError, AudioError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    result = dict(metrics)
    result["epochs"] = result.pop("epoch", 0)
    result["seconds"] = time.perf_counter() - started
    print(json.dumps(result))
    return 0


def _preflight(cfg: TrainConfig) -> int:
    """Check the data the run would read (speaker overlap is a warning here: the trainer accepts it); 0 when ok."""
    paths = resolve_data(cfg)
    report = check_data(paths.data_root, cfg, paths.train_manifest, paths.trials, paths.noise_dir, paths.rir_dir,
                        allow_overlap=True)
    print(report.format())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
