"""VoxCeleb1/2 from the folders people have on disk to training lists and trial lists in a prepared root.

Speaker folders (`id` + digits, holding `<video>/<utt>.wav` or VoxCeleb2's `<video>/<utt>.m4a`) are found up
to four levels under the given folder, so the official archives' layouts all work (`wav/`, `vox1_dev_wav/wav/`
plus `vox1_test_wav/wav/`, VoxCeleb2's `dev/aac/` or `aac/`). A folder named `test` is skipped for VoxCeleb2:
the paper trains on VoxCeleb2 dev only. See `study.datasets.root` for what is written where.

Trial lists are never made up: the official cleaned lists are read from the user's copy (`veri_test2.txt`,
`list_test_all2.txt`, `list_test_hard2.txt`), every file they name must be in the VoxCeleb1 audio found, and
they are written back line for line with each path prefixed `voxceleb1/`. VoxCeleb1-O is required (the paper's
test set); an E or H list that is malformed or names absent files is reported and not written.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from study.datasets.convert import ConversionReport, convert_all, find_ffmpeg
from study.datasets.root import TRIAL_LISTS, VOX1_DIR, VOX1_TRAIN, VOX2_DIR, VOX2_TRAIN, PrepareError, link_folder, write_atomic
from trainables.manifest import ManifestError, Trial, read_trials, trial_files

SPEAKER_FOLDER = re.compile(r"^id\d+$")
MAX_DEPTH = 4
OFFICIAL_TRIALS = {"O": "veri_test2.txt", "E": "list_test_all2.txt", "H": "list_test_hard2.txt"}
"""The cleaned official VoxCeleb1 trial lists, as named on the VoxCeleb website."""
UNCLEANED_TRIALS = {"O": "veri_test.txt", "E": "list_test_all.txt", "H": "list_test_hard.txt"}
FULL_SIZES = {
    "vox1": (1251, 153516),
    "vox1_train": (1211, 148642),
    "vox2": (5994, 1092009),
    "O": 37611,
    "E": 579818,
    "H": 550894,
}
"""Speakers and utterances (trials for O/E/H) of the complete sets, shown beside what was found."""


@dataclass
class VoxCelebSummary:
    """What `prepare_voxceleb` wrote; `lines` is the report printed to the user."""

    lines: list[str] = field(default_factory=list)
    conversion: ConversionReport | None = None

    @property
    def ok(self) -> bool:
        return self.conversion is None or not self.conversion.failed


def find_speakers(root: Path, skip: tuple[str, ...] = (), exclude: Path | None = None) -> dict[str, Path]:
    """Speaker folders (named `id` + digits) under `root`, at most MAX_DEPTH levels down, by name.

    Folders named in `skip`, hidden folders and the folder `exclude` (the output, when it lies inside `root`)
    are not entered. Raises PrepareError when one speaker appears in two different folders.
    """
    found: dict[str, Path] = {}
    excluded = os.path.realpath(exclude) if exclude is not None else None

    def walk(folder: str, depth: int) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise PrepareError(f"{folder}: cannot list the folder ({exc})") from exc
        for entry in entries:
            if not entry.is_dir() or entry.name.startswith("."):
                continue
            if SPEAKER_FOLDER.match(entry.name):
                path = Path(entry.path)
                if entry.name in found and not os.path.samefile(found[entry.name], path):
                    raise PrepareError(
                        f"speaker {entry.name} appears in two folders, {found[entry.name]} and {path}: keep one"
                    )
                found.setdefault(entry.name, path)
            elif depth < MAX_DEPTH and entry.name not in skip and os.path.realpath(entry.path) != excluded:
                walk(entry.path, depth + 1)

    if not root.is_dir():
        raise PrepareError(f"{root} is not a folder")
    walk(str(root), 1)
    return found


def speaker_files(speaker_dir: Path, suffix: str) -> list[str]:
    """`<video>/<utt><suffix>` of every file of one speaker folder, sorted."""
    names = []
    for video in os.scandir(speaker_dir):
        if video.is_dir():
            names.extend(f"{video.name}/{f.name}" for f in os.scandir(video.path) if f.name.endswith(suffix) and f.is_file())
    return sorted(names)


def scan(speakers: dict[str, Path], suffix: str, workers: int) -> dict[str, list[str]]:
    """`speaker_files` of every speaker (in parallel threads), keyed and sorted by speaker."""
    names = sorted(speakers)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        return dict(zip(names, pool.map(lambda s: speaker_files(speakers[s], suffix), names)))


def find_trial_lists(folders: list[Path]) -> tuple[dict[str, Path], dict[str, Path]]:
    """The official cleaned lists found in `folders` (first match wins), and uncleaned ones seen instead."""
    found, uncleaned = {}, {}
    for kind in OFFICIAL_TRIALS:
        for folder in folders:
            if kind not in found and (folder / OFFICIAL_TRIALS[kind]).is_file():
                found[kind] = folder / OFFICIAL_TRIALS[kind]
            if kind not in uncleaned and (folder / UNCLEANED_TRIALS[kind]).is_file():
                uncleaned[kind] = folder / UNCLEANED_TRIALS[kind]
    return found, {k: v for k, v in uncleaned.items() if k not in found}


def read_official_trials(path: Path, available: set[str], vox1: Path) -> list[Trial]:
    """Parse an official list and require every file it names among `available` (`<spk>/<video>/<utt>.wav`)."""
    try:
        trials = read_trials(path)
    except ManifestError as exc:
        raise PrepareError(f"{exc}") from exc
    missing = [name for name in trial_files(trials) if name not in available]
    if missing:
        first = missing[0]
        line_no = next(i for i, line in enumerate(path.read_text().splitlines(), 1) if first in line.split())
        raise PrepareError(
            f"{path}:{line_no}: {first} is not in the VoxCeleb1 audio found under {vox1} "
            f"({len(missing)} of the list's {len(trial_files(trials))} files are missing); "
            "--vox1 must hold both the dev and the test part of VoxCeleb1"
        )
    return trials


def format_trials(trials: list[Trial], prefix: str) -> str:
    """Trial lines `label <prefix>/<enrol> <prefix>/<test>`, in the list's order."""
    return "".join(f"{t.label} {prefix}/{t.enrol} {prefix}/{t.test}\n" for t in trials)


def format_manifest(rows: list[tuple[str, str]]) -> str:
    """A `File,Speaker` CSV."""
    return "File,Speaker\n" + "".join(f"{path},{speaker}\n" for path, speaker in rows)


def _count(found: tuple[int, int], full: tuple[int, int]) -> str:
    text = f"{found[0]:,} speakers, {found[1]:,} utterances"
    return text if found == full else f"{text} (the complete set has {full[0]:,} and {full[1]:,})"


def prepare_voxceleb(
    vox1: Path,
    out: Path,
    vox2: Path | None = None,
    trials_dirs: list[Path] | None = None,
    workers: int = 8,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> VoxCelebSummary:
    """Link VoxCeleb1, convert or link VoxCeleb2 dev, and write the lists into `out`; see the module docstring.

    Trial lists are looked for in `trials_dirs`, then in `vox1`, `vox1/meta` and `vox1`'s parent. Raises
    PrepareError (ffmpeg missing, list missing or naming absent files, no speakers found, ...). Conversion
    failures do not raise: they are in the summary's `conversion.failed` and left out of the list.
    """
    missing = [folder for folder in trials_dirs or [] if not folder.is_dir()]
    if missing:
        raise PrepareError(f"trial list folder {missing[0]} (--trials-dir) is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    summary = VoxCelebSummary()
    speakers1 = find_speakers(vox1, exclude=out)
    if not speakers1:
        raise PrepareError(f"no VoxCeleb1 speaker folders (id<digits>/<video>/<utt>.wav) found under {vox1}")
    files1 = scan(speakers1, ".wav", workers)
    n_vox1 = sum(map(len, files1.values()))
    summary.lines.append(f"VoxCeleb1 in {vox1}: {_count((len(files1), n_vox1), FULL_SIZES['vox1'])}")
    test_speakers = _write_trial_lists(vox1, out, files1, [*(trials_dirs or []), vox1, vox1 / "meta", vox1.parent],
                                       summary)
    _write_vox1_train(out, speakers1, files1, test_speakers, summary)
    if vox2 is not None:
        _prepare_vox2(vox2, out, set(speakers1), workers, progress, log, summary)
    return summary


def _write_trial_lists(vox1: Path, out: Path, files1: dict[str, list[str]], folders: list[Path],
                       summary: VoxCelebSummary) -> set[str]:
    """Write the official trial lists found in `folders` (VoxCeleb1-O required); the VoxCeleb1-O speakers."""
    lists, uncleaned = find_trial_lists(folders)
    if "O" not in lists:
        hint = f" (found the uncleaned {uncleaned['O']}: the paper uses the cleaned list)" if "O" in uncleaned else ""
        raise PrepareError(
            f"VoxCeleb1-O trial list not found: looked for {OFFICIAL_TRIALS['O']} in "
            f"{', '.join(map(str, dict.fromkeys(folders)))}{hint}. It comes with VoxCeleb1 from the VoxCeleb website "
            "('VoxCeleb1-O cleaned'); put it in one of those folders or pass its folder with --trials-dir"
        )
    available = {f"{speaker}/{name}" for speaker, names in files1.items() for name in names}
    test_speakers: set[str] = set()
    for kind, path in lists.items():
        try:
            trials = read_official_trials(path, available, vox1)
        except PrepareError as exc:
            if kind == "O":
                raise
            summary.lines.append(f"VoxCeleb1-{kind}: {TRIAL_LISTS[kind]} not written: {exc}")
            continue
        write_atomic(out / TRIAL_LISTS[kind], format_trials(trials, VOX1_DIR))
        targets = sum(t.label for t in trials)
        full = "" if len(trials) == FULL_SIZES[kind] else f" (the official list has {FULL_SIZES[kind]:,})"
        summary.lines.append(
            f"VoxCeleb1-{kind}: {len(trials):,} trials{full} ({targets:,} target) from {path} -> {out / TRIAL_LISTS[kind]}"
        )
        if kind == "O":
            test_speakers = {name.split("/")[0] for name in trial_files(trials)}
    for kind in OFFICIAL_TRIALS:
        if kind not in lists:
            summary.lines.append(f"VoxCeleb1-{kind}: {OFFICIAL_TRIALS[kind]} not found, {TRIAL_LISTS[kind]} not written")
    return test_speakers


def _write_vox1_train(out: Path, speakers1: dict[str, Path], files1: dict[str, list[str]], test_speakers: set[str],
                      summary: VoxCelebSummary) -> None:
    """Link every VoxCeleb1 speaker folder into `out`; list the ones that are not test speakers for training."""
    for speaker, folder in speakers1.items():
        link_folder(out / VOX1_DIR / speaker, folder)
    train1 = [(f"{VOX1_DIR}/{s}/{name}", s) for s in files1 if s not in test_speakers for name in files1[s]]
    if train1:
        write_atomic(out / VOX1_TRAIN, format_manifest(train1))
        n_spk = len({s for _, s in train1})
        summary.lines.append(f"{VOX1_TRAIN}: {_count((n_spk, len(train1)), FULL_SIZES['vox1_train'])} (VoxCeleb1 "
                             f"without the {len(test_speakers)} VoxCeleb1-O speakers)")
    else:
        summary.lines.append(f"{VOX1_TRAIN} not written: every VoxCeleb1 speaker found is a VoxCeleb1-O test speaker")


def _prepare_vox2(
    vox2: Path, out: Path, vox1_speakers: set[str], workers: int, progress: bool,
    log: Callable[[str], None], summary: VoxCelebSummary,
) -> None:
    speakers = find_speakers(vox2, skip=("test",), exclude=out)
    if not speakers:
        raise PrepareError(f"no VoxCeleb2 speaker folders (id<digits>/<video>/<utt>.m4a or .wav) found under {vox2}")
    shared = sorted(set(speakers) & vox1_speakers)
    if shared:
        raise PrepareError(f"speaker folder(s) {shared[:3]} are both under --vox1 and --vox2: are the two swapped?")
    m4a = scan(speakers, ".m4a", workers)
    wav_only = {s: p for s, p in speakers.items() if not m4a[s]}
    wav = scan(wav_only, ".wav", workers)
    jobs = [
        (speakers[s] / name, out / VOX2_DIR / s / (name[: -len(".m4a")] + ".wav"))
        for s in sorted(m4a) for name in m4a[s]
    ]
    if jobs:
        ffmpeg = find_ffmpeg()
        log(f"converting {len(jobs):,} VoxCeleb2 .m4a files to 16 kHz mono wav in {out / VOX2_DIR} ({workers} workers)")
        summary.conversion = convert_all(jobs, ffmpeg, workers, progress=progress)
    for speaker, folder in wav_only.items():
        if wav[speaker]:
            link_folder(out / VOX2_DIR / speaker, folder)
    failed = summary.conversion.failed_outputs if summary.conversion else set()
    rows = [(f"{VOX2_DIR}/{s}/{name[: -len('.m4a')]}.wav", s) for s in sorted(m4a) for name in m4a[s]]
    rows = [row for row in rows if str(out / row[0]) not in failed]
    rows += [(f"{VOX2_DIR}/{s}/{name}", s) for s in sorted(wav) for name in wav[s]]
    rows.sort()
    if not rows:
        raise PrepareError(f"no VoxCeleb2 audio (.m4a or .wav in <speaker>/<video>/) found under {vox2}")
    write_atomic(out / VOX2_TRAIN, format_manifest(rows))
    n_spk = len({s for _, s in rows})
    summary.lines.append(f"{VOX2_TRAIN}: {_count((n_spk, len(rows)), FULL_SIZES['vox2'])} from {vox2}")
    if summary.conversion is not None:
        summary.lines += _conversion_lines(summary.conversion)


def _conversion_lines(c: ConversionReport) -> list[str]:
    """Counts of the VoxCeleb2 conversion and its first 20 failures."""
    lines = [f"conversion: {c.converted:,} converted, {c.skipped:,} already done, {len(c.failed):,} failed"]
    lines += [f"  failed: {line}" for line in c.failed[:20]]
    if len(c.failed) > 20:
        lines.append(f"  ... and {len(c.failed) - 20} more")
    if c.failed:
        lines.append(f"{VOX2_TRAIN} leaves the failed files out; run the command again to retry them")
    return lines
