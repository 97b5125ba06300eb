"""Prepare real datasets for training: `python -m study.prepare {voxceleb,musan,rirs,check} ...`.

  voxceleb --vox1 DIR [--vox2 DIR] --out ROOT   lists + trial lists in ROOT, VoxCeleb2 .m4a -> 16 kHz wav
  musan --root DIR --out ROOT [--download]      MUSAN in 8 s chunks in ROOT/musan_split
  rirs --root DIR --out ROOT [--download]       the simulated RIRs checked, linked and indexed in ROOT
  check --data-root ROOT [--train CSV] [--trials FILE]   everything the trainer would read, checked

ROOT is then the `--data-root` of `python -m study.train --dataset voxceleb2` (see `study.datasets.root`).
`check` also records what each training file holds ($MARGIN_STUDY_CACHE/checks/): every trial on the same list
and root then starts without reopening every file (it reopens a random sample).
Exit status: 0 done, 1 data problems (listed), 2 cannot proceed (the message says what to do).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from study.cli_checks import number_type, output_folder_problem
from study.data_options import add_data_options, data_overrides
from study.datasets.download import MUSAN, RIRS, fetch_and_extract
from study.datasets.musan import split_musan
from study.datasets.root import DATASETS, MUSAN_DIR, TRIAL_LISTS, PrepareError, dataset_paths
from trainables.config import ConfigError, build_config, parse_override

WORKERS = os.cpu_count() or 1
WORKER_COUNT = number_type(int, 1)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m study.prepare", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    sub = p.add_subparsers(dest="command", required=True)

    vox = sub.add_parser("voxceleb", help="VoxCeleb1/2 lists and trial lists (local copies only)")
    vox.add_argument("--vox1", required=True, type=Path, help="VoxCeleb1 wav folder (dev and test speakers)")
    vox.add_argument("--vox2", type=Path, help="VoxCeleb2 dev folder (aac/ or dev/aac/ with .m4a, or wav)")
    vox.add_argument("--out", required=True, type=Path, help="the prepared data root")
    vox.add_argument("--trials-dir", action="append", type=Path, default=[],
                     help="folder holding veri_test2.txt, list_test_all2.txt, list_test_hard2.txt (default: --vox1)")
    vox.add_argument("--workers", type=WORKER_COUNT, default=WORKERS,
                     help=f"parallel conversions (default: {WORKERS})")

    musan = sub.add_parser("musan", help="MUSAN split into fixed-length chunks by category")
    musan.add_argument("--root", required=True, type=Path, help="folder with musan/ (or noise/ speech/ music/)")
    musan.add_argument("--out", required=True, type=Path, help=f"the prepared data root (chunks go to {MUSAN_DIR}/)")
    musan.add_argument("--chunk-seconds", type=number_type(float, 0, exclusive=True), default=8.0,
                       help="chunk length (default: 8, the paper's)")
    musan.add_argument("--workers", type=WORKER_COUNT, default=WORKERS, help=f"parallel files (default: {WORKERS})")
    _download_options(musan, "musan.tar.gz (11 GB, OpenSLR 17)")

    rirs = sub.add_parser("rirs", help="the simulated room impulse responses checked and indexed")
    rirs.add_argument("--root", required=True, type=Path, help="folder with RIRS_NOISES/ (or simulated_rirs/)")
    rirs.add_argument("--out", required=True, type=Path, help="the prepared data root")
    rirs.add_argument("--workers", type=WORKER_COUNT, default=WORKERS, help=f"parallel checks (default: {WORKERS})")
    _download_options(rirs, "rirs_noises.zip (1.3 GB, OpenSLR 28)")

    check = sub.add_parser("check", help="check lists and audio before training (non-zero exit when it would fail)")
    add_data_options(check, root_required=True, helps={"data_root": "folder the lists' paths are relative to",
                                                       "train": "training list, File,Speaker CSV"})
    check.add_argument("--dataset", choices=sorted(DATASETS), help="check a prepared dataset's lists and folders")
    check.add_argument("--profile", default="paper", help="config profile whose settings apply (default: paper)")
    check.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="config value as for training, e.g. max_bad_files=0 or max_utterances=1000")
    check.add_argument("--allow-overlap", action="store_true", help="train/test speaker overlap is a warning only")
    check.add_argument("--report", type=Path, help="also write every finding with every path to this file")
    check.add_argument("--workers", type=WORKER_COUNT, default=WORKERS,
                       help=f"worker processes (default: {WORKERS})")
    return p


def _download_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--download", action="store_true",
                   help=f"download {what} into --root first (resumable, MD5-checked), then extract it")
    p.add_argument("--mirror", help="base URL of an OpenSLR mirror, e.g. https://us.openslr.org")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        problem = output_folder_problem(args.out, "--out") if args.command != "check" else None
        if problem:
            raise PrepareError(problem)
        return {"voxceleb": _voxceleb, "musan": _musan, "rirs": _rirs, "check": _check}[args.command](args)
    except (PrepareError, OSError) as exc:  # OSError: a file or folder it cannot create or write, named
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _voxceleb(args: argparse.Namespace) -> int:
    from study.datasets.voxceleb import prepare_voxceleb  # heavy: torch (via trainables.audio), not for --help

    summary = prepare_voxceleb(args.vox1, args.out, args.vox2, args.trials_dir, args.workers)
    print("\n".join(summary.lines))
    print(f"prepared data root: {args.out.resolve()}")
    return 0 if summary.ok else 1


def _musan(args: argparse.Namespace) -> int:
    if args.download:
        fetch_and_extract(MUSAN.at(args.mirror), args.root)
    report = split_musan(args.root, args.out / MUSAN_DIR, args.chunk_seconds, args.workers)
    print("\n".join(report.lines()))
    print(f"noise folder: {(args.out / MUSAN_DIR).resolve()}")
    return 1 if report.errors else 0


def _rirs(args: argparse.Namespace) -> int:
    from study.datasets.rirs import index_rirs  # heavy: torch (via trainables.audio), not for --help

    if args.download:
        fetch_and_extract(RIRS.at(args.mirror), args.root)
    report = index_rirs(args.root, args.out, args.workers)
    print("\n".join(report.lines()))
    if report.errors:
        print("not linked or indexed: fix or remove the files above, then run again")
        return 1
    return 0


def _check(args: argparse.Namespace) -> int:
    from study.datasets.check import check_data  # heavy: torch (via trainables.audio), not for --help

    try:
        cfg = build_config(args.profile, dict(parse_override(text) for text in args.set))
    except ConfigError as exc:
        raise PrepareError(str(exc)) from None
    root = Path(args.data_root)
    if args.report and not args.report.parent.is_dir():
        raise PrepareError(f"--report {args.report}: the folder {args.report.parent} does not exist")
    given = data_overrides(args)
    del given["data_root"]
    if args.dataset:
        paths = dataset_paths(args.dataset, root, given)
    elif given:
        paths = {**dict.fromkeys(DATASETS["voxceleb2"], ""), **given}
    else:
        paths = _prepared_paths(root)
    report = check_data(str(root), cfg, paths["train_manifest"], paths["trials"], paths["noise_dir"],
                        paths["rir_dir"], args.workers, allow_overlap=args.allow_overlap)
    print(report.format())
    if args.report:
        args.report.write_text(report.full_text())
        print(f"every finding: {args.report}")
    return 0 if report.ok else 1


def _prepared_paths(root: Path) -> dict[str, str]:
    """Whatever a prepared root holds: VoxCeleb2 (else VoxCeleb1) training list, VoxCeleb1-O, MUSAN, RIRs."""
    layout = DATASETS["voxceleb2"]
    train = next((name for name in (layout["train_manifest"], DATASETS["voxceleb1"]["train_manifest"])
                  if (root / name).is_file()), "")
    paths = {key: value if (root / value).exists() else "" for key, value in layout.items()}
    paths["train_manifest"] = train
    if not any(paths.values()):
        raise PrepareError(
            f"nothing to check in {root}: no {layout['train_manifest']}, {TRIAL_LISTS['O']}, {layout['noise_dir']}/ "
            f"or {layout['rir_dir']}/ there; give --train/--trials/--noise/--rir, or prepare the root first"
        )
    return paths


if __name__ == "__main__":
    sys.exit(main())
