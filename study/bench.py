"""Speed figures of the trainer, printed as one JSON object: `python -m study.bench`.

Each figure times the training run's own code, its parts built by the same builders (`trainables.parts`):
- train step: the loop's `train_step` (augmentation + features + forward + loss + backward + Adam step) on a
  batch of --batch utterances x two views (paper config: Fast ResNet-34, 2 s views) held in memory, in fp32
  (the baseline, measured in the same run) and bf16 autocast + channels_last, then with noise + reverberation;
- loader: utterances/s through the run's loader (TwoViewDataset + BatchSampler + DataLoader), with and without
  the batched noise + reverberation augmentation;
- evaluation: seconds of the loop's evaluation step on a trial list (default: speechocean762 trials_dev.txt,
  3600 trials), audio decoding timed separately;
- metrics: milliseconds for EER + minDCF of 37,720 scores;
- loader_workers: utterances/s through the run's loader reading on demand from a 20,000-row list (the real
  files repeated) with 0, 1 and 2 worker processes, beside what the bf16 step consumes when `step` runs too;
- startup: seconds from `build_data` to the first batch on a 1,000,000-row list with the check record present,
  against the old start-up (every row opened; timed on 20,000 rows and scaled) (`study.bench_data`);
- banks: host and device bytes per hour of noise of the int16 file-mapped banks against the float32 banks held
  on every device, their build and open times, and one augmentation step with each (`study.bench_banks`);
- trials: the fixed cost of a `smoke` trial outside its loop, under a Ray Train controller against run in the
  Tune trial (`study.bench_trials`; starts a local Ray instance on 127.0.0.1, about two minutes).
The authors' toolkit figures on the same 2-core machine are printed beside ours for comparison.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from study.bench_timing import median_time
from study.cli_checks import device_problem, number_type
from trainables.audio import AudioError
from trainables.config import ConfigError, TrainConfig, build_config
from trainables.data_paths import DataPaths
from trainables.dataset import DataError
from trainables.evaluation import TrialSet
from trainables.loop import local_device, run_evaluation, stack_views, train_step
from trainables.manifest import ManifestError
from trainables.metrics import verification_metrics
from trainables.parts import build_augmenter, build_data, build_step

PARTS = ("step", "loader", "eval", "metrics", "loader_workers", "startup", "banks", "trials")
AUTHORS = {"step_s": 1.31, "loader_utt_per_s_aug": 596.0, "loader_utt_per_s_no_aug": 1773.0, "eval_s": (7.0, 10.0), "metrics_ms": 13.6}
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _silent(*_) -> None:
    pass


def data_paths(data_root: Path | None = None, manifest: str = "", noise: Path | None = None, rir: Path | None = None) -> DataPaths:
    """The paths a benchmark reads (no trial list: the loader and step need none)."""
    return DataPaths(data_root=str(data_root or ""), train_manifest=str(data_root / manifest) if data_root else "",
                     trials="", noise_dir=str(noise or ""), rir_dir=str(rir or ""), embedded=False)


def augmentation(noise: Path | None, rir: Path | None) -> dict:
    """Config values for noise + reverberation on every view, from the folders that are given."""
    return {"noise_prob": 1.0 if noise else 0.0, "reverb_prob": 1.0 if rir else 0.0}


def bench_step(batch: int, precision: str, channels_last: bool, repeats: int, device: torch.device,
               noise: Path | None = None, rir: Path | None = None) -> dict:
    """Seconds per `train_step` of symmetric SimCLR NT-Xent-AM on `batch` utterances (2 views each)."""
    cfg = TrainConfig.from_dict({"batch_size": batch, "precision": precision, "channels_last": channels_last,
                                 **augmentation(noise, rir)})
    parts = build_step(cfg, data_paths(noise=noise, rir=rir), device)
    views = torch.randn(batch, 2, cfg.crop_samples, generator=torch.Generator().manual_seed(0)) * 0.1  # (n, 2, crop)

    def step():
        train_step(parts, views, torch.Generator().manual_seed(0))
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    seconds = median_time(step, repeats, warmup=2)
    return {"step_s": seconds, "samples_per_s": batch / seconds}


def bench_loader(data_root: Path, manifest: str, noise: Path | None, rir: Path | None, batches: int, batch: int = 64) -> dict:
    """Utterances/s delivered as (2n, crop) training batches, with and without augmentation."""
    cfg = TrainConfig.from_dict({"batch_size": batch, **augmentation(noise, rir)})
    paths = data_paths(data_root, manifest, noise, rir)
    cpu = torch.device("cpu")
    data = build_data(cfg, paths, cpu, _silent)
    augmenter = build_augmenter(cfg, paths)
    results = {}
    for name, augment in (("no_aug", False), ("aug", True)):
        count, epoch, start = 0, 0, time.perf_counter()
        while count < batches * batch:
            data.sampler.set_epoch(epoch)
            data.dataset.set_epoch(epoch)
            for step, views in enumerate(data.loader):
                waves = stack_views(views, cpu)  # (2n, crop)
                if augment:
                    waves = augmenter(waves, torch.Generator().manual_seed(step))
                count += views.shape[0]
                if count >= batches * batch:
                    break
            epoch += 1
        results[f"loader_utt_per_s_{name}"] = count / (time.perf_counter() - start)
    return results


def bench_eval(data_root: Path, trials: str, modes: list[tuple[str, int]]) -> dict:
    """Seconds of the loop's evaluation step on every trial (audio decoding timed separately)."""
    cfg = build_config("cpu", augmentation(None, None))
    start = time.perf_counter()
    trial_set = TrialSet.load(str(data_root / trials), str(data_root), cfg.sample_rate)
    out = {"eval_trials": len(trial_set.trials), "eval_utterances": len(trial_set.names), "eval_load_s": time.perf_counter() - start}
    parts = build_step(cfg, data_paths(), torch.device("cpu"))
    for mode, count in modes:
        result, _ = run_evaluation(dataclasses.replace(parts, cfg=cfg.replace(eval_mode=mode, eval_segments=count)), trial_set)
        key = "full" if mode == "full" else f"segments{count}"
        out[f"eval_s_{key}"] = result["eval_s"]
    return out


def bench_metrics(n: int = 37720, repeats: int = 20) -> dict:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, n)
    scores = rng.normal(labels * 1.5, 1.0)
    return {"metrics_ms": 1000 * median_time(lambda: verification_metrics(scores, labels), repeats), "metrics_scores": n}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m study.bench", description=__doc__.split("\n")[0])
    p.add_argument("--data-root", type=Path, default=SHARED_DATA / "speechocean762")
    p.add_argument("--train", default="train.csv")
    p.add_argument("--trials", default="trials_dev.txt")
    p.add_argument("--noise", type=Path, default=SHARED_DATA / "noise")
    p.add_argument("--rir", type=Path, default=SHARED_DATA / "rir")
    p.add_argument("--repeats", type=number_type(int, 1), default=5, help="timed training steps per setting")
    p.add_argument("--batch", type=number_type(int, 2), default=64, help="utterances per training step")
    p.add_argument("--device", default="cpu", help="device of the training-step benchmark (cpu, cuda)")
    p.add_argument("--only", choices=PARTS, action="append", help="run only these parts (default: all)")
    args = p.parse_args(argv)
    problem = device_problem(args.device)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        result = run(args)
    except (ConfigError, DataError, ManifestError, AudioError) as error:  # the message names the value or file
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1))
    return 0


def run(args: argparse.Namespace) -> dict:
    """The figures the options choose, with the authors' beside them."""
    chosen = set(args.only or PARTS)
    have_data = (args.data_root / args.train).is_file()
    result: dict = {"torch": torch.__version__, "threads": torch.get_num_threads(), "data_root": str(args.data_root)}
    if "metrics" in chosen:
        result.update(bench_metrics())
    if "step" in chosen:
        device = local_device(args.device)
        result.update(device=str(device), batch=args.batch)
        fp32 = bench_step(args.batch, "fp32", False, args.repeats, device)
        bf16 = bench_step(args.batch, "bf16", True, args.repeats, device)
        result.update({"step_s_fp32": fp32["step_s"], "samples_per_s_fp32": fp32["samples_per_s"]})
        result.update({"step_s_bf16_channels_last": bf16["step_s"], "samples_per_s_bf16_channels_last": bf16["samples_per_s"]})
        result["step_speedup_bf16_vs_fp32"] = fp32["step_s"] / bf16["step_s"]
        if args.noise.is_dir() and args.rir.is_dir():
            with_aug = bench_step(args.batch, "bf16", True, args.repeats, device, args.noise, args.rir)
            result.update({"step_s_bf16_channels_last_with_augmentation": with_aug["step_s"]})
    if have_data and "loader" in chosen:
        result.update(bench_loader(args.data_root, args.train, args.noise if args.noise.is_dir() else None,
                                   args.rir if args.rir.is_dir() else None, 40, args.batch))
    if have_data and "eval" in chosen and (args.data_root / args.trials).is_file():
        result.update(bench_eval(args.data_root, args.trials, [("full", 1), ("segments", 10)]))
    if have_data and "loader_workers" in chosen:
        from study.bench_data import bench_loader_workers

        result["loader_workers"] = figures = bench_loader_workers(args.data_root, batch=args.batch)
        if "samples_per_s_bf16_channels_last" in result:
            consumed = result["samples_per_s_bf16_channels_last"]
            figures["model_consumes_utt_per_s"] = consumed
            figures["loader_2_workers_vs_model_consumption"] = figures["loader_utt_per_s_workers2"] / consumed
    if have_data and "startup" in chosen:
        from study.bench_data import bench_startup

        result["startup"] = bench_startup(args.data_root)
    if "banks" in chosen and args.noise.is_dir() and args.rir.is_dir():
        from study.bench_banks import bench_noise_bank

        result["banks"] = bench_noise_bank(args.noise, args.rir, device=local_device(args.device))
    if "trials" in chosen:
        from study.bench_trials import bench_trial_overhead  # heavy: ray

        result["trials"] = bench_trial_overhead()
    if not have_data:
        result["skipped"] = f"loader and eval need {args.data_root / args.train} (absent)"
    result["authors_reference"] = AUTHORS
    result["speedup_vs_authors"] = {
        key: value
        for key, value in {
            "step": AUTHORS["step_s"] / result["step_s_bf16_channels_last"] if result.get("device") == "cpu" and args.batch == 64 else None,
            "loader_aug": result.get("loader_utt_per_s_aug", 0) / AUTHORS["loader_utt_per_s_aug"] or None,
            "loader_no_aug": result.get("loader_utt_per_s_no_aug", 0) / AUTHORS["loader_utt_per_s_no_aug"] or None,
            "eval_full_vs_best_authors": AUTHORS["eval_s"][0] / result["eval_s_full"] if "eval_s_full" in result else None,
            "metrics": AUTHORS["metrics_ms"] / result["metrics_ms"] if "metrics_ms" in result else None,
        }.items()
        if value
    }
    return result


if __name__ == "__main__":
    sys.exit(main())
