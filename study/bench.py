"""Speed figures of the trainer, printed as one JSON object: `python -m study.bench`.

- train step: batch 64 utterances x two 2 s views, Fast ResNet-34, data in memory (features + forward + loss +
  backward + Adam step), fp32 (the baseline, measured in the same run) and bf16 autocast + channels_last;
- loader: utterances/s through the TwoViewDataset + BatchSampler + DataLoader, with and without the batched
  noise + reverberation augmentation;
- evaluation: seconds to embed and score a trial list (default: speechocean762 trials_dev.txt, 3600 trials);
- metrics: milliseconds for EER + minDCF of 37,720 scores.
The authors' toolkit figures on the same 2-core machine are printed beside ours for comparison.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

AUTHORS = {"step_s": 1.31, "loader_utt_per_s_aug": 596.0, "loader_utt_per_s_no_aug": 1773.0, "eval_s": (7.0, 10.0), "metrics_ms": 13.6}
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _median_time(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_step(batch: int, precision: str, channels_last: bool, repeats: int, device: torch.device, augmenter=None) -> dict:
    """Seconds per optimiser step of symmetric SimCLR NT-Xent-AM on `batch` utterances (2 views each)."""
    from trainables.config import TrainConfig
    from trainables.features import LogMel
    from trainables.worker import build_framework

    cfg = TrainConfig.from_dict({"batch_size": batch, "precision": precision, "channels_last": channels_last})
    model = build_framework(cfg).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    frontend = LogMel(cfg.sample_rate, cfg.n_mels, cfg.mel_window).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    waves = (torch.randn(2 * batch, cfg.crop_samples, generator=torch.Generator().manual_seed(0)) * 0.1).to(device)

    def step():
        x = augmenter(waves, torch.Generator().manual_seed(0)) if augmenter is not None else waves
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(frontend(x), cfg.margin, cfg.temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    seconds = _median_time(step, repeats, warmup=2)
    return {"step_s": seconds, "samples_per_s": batch / seconds}


def bench_loader(data_root: Path, manifest: str, noise: Path | None, rir: Path | None, batches: int) -> dict:
    """Utterances/s delivered as (2n, crop) training batches, with and without augmentation."""
    from trainables.augment import Augmenter, NoiseBank, RirBank
    from trainables.dataset import BatchedViews, TwoViewDataset
    from trainables.manifest import read_train_manifest
    from trainables.sampler import BatchSampler

    utterances = read_train_manifest(str(data_root / manifest), str(data_root))
    dataset = TwoViewDataset(utterances, sample_rate=16000, crop=32000, seed=0, log=lambda *_: None)
    sampler = BatchSampler(dataset.speakers, 64, seed=0)
    loader = torch.utils.data.DataLoader(BatchedViews(dataset), sampler=sampler, batch_size=None)
    augmenter = Augmenter(
        NoiseBank.from_dir(noise, 16000) if noise else None, RirBank.from_dir(rir, 16000) if rir else None, 1.0, 1.0
    )
    results = {}
    for name, augment in (("no_aug", False), ("aug", True)):
        count, epoch, start = 0, 0, time.perf_counter()
        while count < batches * 64:
            sampler.set_epoch(epoch)
            dataset.set_epoch(epoch)
            for step, batch in enumerate(loader):
                waves = batch.transpose(0, 1).reshape(-1, batch.shape[-1])
                if augment:
                    waves = augmenter(waves, torch.Generator().manual_seed(step))
                count += batch.shape[0]
                if count >= batches * 64:
                    break
            epoch += 1
        results[f"loader_utt_per_s_{name}"] = count / (time.perf_counter() - start)
    return results


def bench_eval(data_root: Path, trials: str, modes: list[tuple[str, int]]) -> dict:
    """Seconds to embed every trial utterance and score the list (audio decoding timed separately)."""
    from trainables.config import build_config
    from trainables.evaluation import TrialSet, evaluate
    from trainables.features import LogMel
    from trainables.worker import build_framework

    start = time.perf_counter()
    trial_set = TrialSet.load(str(data_root / trials), str(data_root), 16000)
    out = {"eval_trials": len(trial_set.trials), "eval_utterances": len(trial_set.names), "eval_load_s": time.perf_counter() - start}
    cfg = build_config("cpu")
    encoder = build_framework(cfg).encoder.to(memory_format=torch.channels_last)
    frontend = LogMel(16000, cfg.n_mels, cfg.mel_window)
    for mode, count in modes:
        start = time.perf_counter()
        evaluate(trial_set, frontend, encoder, torch.device("cpu"), mode, 56240, count, torch.bfloat16)
        key = "full" if mode == "full" else f"segments{count}"
        out[f"eval_s_{key}"] = time.perf_counter() - start
    return out


def bench_metrics(n: int = 37720, repeats: int = 20) -> dict:
    from trainables.metrics import verification_metrics

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, n)
    scores = rng.normal(labels * 1.5, 1.0)
    return {"metrics_ms": 1000 * _median_time(lambda: verification_metrics(scores, labels), repeats), "metrics_scores": n}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m study.bench", description=__doc__.split("\n")[0])
    p.add_argument("--data-root", type=Path, default=SHARED_DATA / "speechocean762")
    p.add_argument("--train", default="train.csv")
    p.add_argument("--trials", default="trials_dev.txt")
    p.add_argument("--noise", type=Path, default=SHARED_DATA / "noise")
    p.add_argument("--rir", type=Path, default=SHARED_DATA / "rir")
    p.add_argument("--repeats", type=int, default=5, help="timed training steps per setting")
    p.add_argument("--batch", type=int, default=64, help="utterances per training step")
    p.add_argument("--device", default="cpu", help="device of the training-step benchmark (cpu, cuda)")
    p.add_argument("--only", choices=["step", "loader", "eval", "metrics"], action="append", help="run only these parts")
    args = p.parse_args(argv)
    parts = set(args.only or ["step", "loader", "eval", "metrics"])
    have_data = (args.data_root / args.train).is_file()
    result: dict = {"torch": torch.__version__, "threads": torch.get_num_threads(), "data_root": str(args.data_root)}
    if "metrics" in parts:
        result.update(bench_metrics())
    if "step" in parts:
        device = torch.device(args.device)
        result.update(device=str(device), batch=args.batch)
        fp32 = bench_step(args.batch, "fp32", False, args.repeats, device)
        bf16 = bench_step(args.batch, "bf16", True, args.repeats, device)
        result.update({"step_s_fp32": fp32["step_s"], "samples_per_s_fp32": fp32["samples_per_s"]})
        result.update({"step_s_bf16_channels_last": bf16["step_s"], "samples_per_s_bf16_channels_last": bf16["samples_per_s"]})
        result["step_speedup_bf16_vs_fp32"] = fp32["step_s"] / bf16["step_s"]
        if args.noise.is_dir() and args.rir.is_dir():
            from trainables.augment import Augmenter, NoiseBank, RirBank

            augmenter = Augmenter(NoiseBank.from_dir(args.noise, 16000, device=device), RirBank.from_dir(args.rir, 16000, device=device), 1.0, 1.0)
            with_aug = bench_step(args.batch, "bf16", True, args.repeats, device, augmenter)
            result.update({"step_s_bf16_channels_last_with_augmentation": with_aug["step_s"]})
    if have_data and "loader" in parts:
        result.update(bench_loader(args.data_root, args.train, args.noise if args.noise.is_dir() else None, args.rir if args.rir.is_dir() else None, 40))
    if have_data and "eval" in parts and (args.data_root / args.trials).is_file():
        result.update(bench_eval(args.data_root, args.trials, [("full", 1), ("segments", 10)]))
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
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
