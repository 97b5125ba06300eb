"""The run's training-data loader: the same batches whatever the worker count or a resume, start-up from the check
record on a million-row list, files that break while training counted, stood in for and refused in this process."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import trainables.file_checks as file_checks_module
from trainables.check_record import PROBE_ROWS, fingerprint, record_path
from trainables.config import ConfigError, TrainConfig
from trainables.corpus import CACHE_ENV
from trainables.data_paths import DataPaths
from trainables.dataset import DataError, TwoViewDataset
from trainables.loader import AUTO_WORKERS, auto_workers, build_loader
from trainables.manifest import Utterance
from trainables.parts import build_data
from trainables.sampler import BatchSampler

RATE = 16000
CROP = 1600
CPU = torch.device("cpu")
SPEECHOCEAN = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "speechocean762"


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Check records go to this test's folder."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def write_files(folder: Path, count: int, seconds: float = 0.3) -> list[str]:
    """`count` distinct 16-bit wavs of `seconds` (noise of a per-file seed), as names relative to `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for k in range(count):
        wave = np.random.default_rng(k).uniform(-0.5, 0.5, int(seconds * RATE) + 37 * k % 500)
        sf.write(folder / f"{k}.wav", wave, RATE, subtype="PCM_16")
        names.append(f"{k}.wav")
    return names


def write_list(path: Path, names: list[str], rows: int) -> Path:
    """A `rows`-row training list cycling through `names`, speaker = the file's number modulo 7."""
    body = [f"{name},s{k % 7}" for k, name in enumerate(names)]
    path.write_text("File,Speaker\n" + "\n".join(body[i % len(body)] for i in range(rows)) + "\n")
    return path


def config(**changes) -> TrainConfig:
    values = dict(batch_size=8, crop_seconds=CROP / RATE, preload=False, noise_prob=0.0, reverb_prob=0.0, seed=5)
    return TrainConfig.from_dict({**values, **changes})


def paths_of(root: Path, manifest: Path) -> DataPaths:
    return DataPaths(str(root), str(manifest), "", "", "", embedded=False)


def epoch_batches(data, epoch: int) -> list[torch.Tensor]:
    data.sampler.set_epoch(epoch)
    data.dataset.set_epoch(epoch)
    return list(data.loader)


def quiet(_message: str) -> None:
    pass


def break_file(path: Path) -> None:
    path.write_bytes(b"not audio any more" * 20)


def test_auto_workers_and_its_config_value():
    assert TrainConfig().loader_workers == AUTO_WORKERS == -1
    with pytest.raises(ConfigError, match=r"loader_workers=-2 is out of range; allowed: \[-1, 256\]"):
        TrainConfig.from_dict({"loader_workers": -2})
    assert [auto_workers(True, cpus) for cpus in (1, 2, 16)] == [0, 0, 0]
    assert [auto_workers(False, cpus) for cpus in (1, 2, 4, 64)] == [1, 1, 3, 8]


def test_the_same_batches_for_0_and_2_workers_over_two_epochs_and_a_resume(tmp_path):
    names = write_files(tmp_path / "audio", 40)
    manifest = write_list(tmp_path / "train.csv", names, 40)
    paths = paths_of(tmp_path / "audio", manifest)
    serial = build_data(config(loader_workers=0), paths, CPU, quiet)
    parallel = build_data(config(loader_workers=2), paths, CPU, quiet)
    assert parallel.loader.num_workers == 2 and not parallel.dataset.preloaded
    epochs = [epoch_batches(serial, epoch) for epoch in (0, 1)]
    assert len(epochs[0]) == 5 and epochs[0][0].shape == (8, 2, CROP)
    assert not torch.equal(epochs[0][0], epochs[1][0])
    for epoch in (0, 1):
        got = epoch_batches(parallel, epoch)
        assert len(got) == len(epochs[epoch]) and all(torch.equal(a, b) for a, b in zip(got, epochs[epoch]))
    resumed = build_data(config(loader_workers=2), paths, CPU, quiet)  # a fresh run resumed at epoch 1
    assert all(torch.equal(a, b) for a, b in zip(epoch_batches(resumed, 1), epochs[1]))
    serial.dataset.set_epoch(0)
    serial.sampler.set_epoch(0)
    assert torch.equal(torch.stack([serial.dataset[i] for i in next(iter(serial.sampler))]), epochs[0][0])


@pytest.mark.skipif(not (SPEECHOCEAN / "train.csv").is_file(), reason=f"real speech not found at {SPEECHOCEAN}")
def test_real_files_read_on_demand_give_the_same_batches_with_workers():
    paths = paths_of(SPEECHOCEAN, SPEECHOCEAN / "train.csv")
    cfg = config(max_utterances=48, batch_size=16, crop_seconds=2.0)
    serial = build_data(cfg.replace(loader_workers=0), paths, CPU, quiet)
    parallel = build_data(cfg.replace(loader_workers=2), paths, CPU, quiet)
    for epoch in (0, 1):
        a, b = epoch_batches(serial, epoch), epoch_batches(parallel, epoch)
        assert len(a) == 3 and all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.fixture
def opens(monkeypatch):
    """Every `audio_info` call of the file checks (the check, the probe), by path."""
    calls = []
    real = file_checks_module.audio_info

    def counted(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(file_checks_module, "audio_info", counted)
    return calls


MILLION = 1_000_000


def test_a_million_rows_start_from_the_record_without_opening_every_file(tmp_path, cache, opens):
    names = write_files(tmp_path / "audio", 1000, seconds=0.25)
    manifest = write_list(tmp_path / "train.csv", names, MILLION)
    paths = paths_of(tmp_path / "audio", manifest)
    cfg = config(batch_size=200)
    first = build_data(cfg, paths, CPU, quiet)  # no record: each distinct file opened once, then recorded
    assert len(first.dataset) == MILLION and len(opens) == 1000 and len(set(opens)) == 1000
    assert record_path(fingerprint(manifest, paths.data_root), cache).is_file()
    opens.clear()
    data = build_data(cfg, paths, CPU, quiet)
    assert len(data.dataset) == MILLION and 0 < len(opens) <= PROBE_ROWS  # a sample, not every row or file
    assert data.dataset.speakers[:8] == [f"s{k % 7}" for k in range(8)]
    data.sampler.set_epoch(0)
    data.dataset.set_epoch(0)
    assert next(iter(data.loader)).shape == (200, 2, CROP)


@pytest.mark.parametrize("with_record", [False, True])
def test_a_million_rows_mostly_unreadable_are_refused(tmp_path, opens, with_record):
    names = write_files(tmp_path / "audio", 1000, seconds=0.25)
    manifest = write_list(tmp_path / "train.csv", names, MILLION)
    paths = paths_of(tmp_path / "audio", manifest)
    cfg = config(batch_size=200)
    if with_record:
        build_data(cfg, paths, CPU, quiet)
    for k in range(0, 1000, 10):
        (tmp_path / "audio" / f"{k}.wav").unlink()
    for k in range(1000):
        if k % 10:
            break_file(tmp_path / "audio" / f"{k}.wav")
    opens.clear()
    with pytest.raises(DataError) as info:
        build_data(cfg, paths, CPU, quiet)
    message = str(info.value)
    assert "\n" not in message and "max_bad_files=0.01" in message and "--set max_bad_files=F" in message
    if with_record:  # the probe refuses from its sample
        assert "sampled at start" in message and len(opens) <= PROBE_ROWS
    else:
        assert message.startswith(f"{MILLION} of {MILLION} training files (100.0%) are unreadable") and len(opens) == 1000


def broken_run(tmp_path: Path, broken: int, workers: int, max_bad: float):
    """A recorded 40-file list read on demand, then `broken` of its files broken before the first epoch."""
    names = write_files(tmp_path / "audio", 40)
    manifest = write_list(tmp_path / "train.csv", names, 40)
    paths = paths_of(tmp_path / "audio", manifest)
    cfg = config(loader_workers=workers, max_bad_files=max_bad)
    build_data(cfg, paths, CPU, quiet)  # records the check
    data = build_data(cfg, paths, CPU, print)
    for k in range(broken):
        break_file(tmp_path / "audio" / f"{3 + 7 * k}.wav")
    return data


def test_a_file_broken_after_the_record_is_counted_and_stood_in_for(tmp_path, capfd):
    data = broken_run(tmp_path / "a", broken=1, workers=2, max_bad=0.05)
    got = [epoch_batches(data, epoch) for epoch in (0, 1)]
    assert all(len(batches) == 5 and all(b.shape == (8, 2, CROP) for b in batches) for batches in got)
    broken_path = str(tmp_path / "a" / "audio" / "3.wav")
    assert data.dataset.broken_files() == [broken_path]
    logged = [line for line in capfd.readouterr().out.splitlines() if "while training" in line]
    assert len(logged) == 1 and broken_path in logged[0] and "max_bad_files=0.05" in logged[0]
    serial = broken_run(tmp_path / "b", broken=1, workers=0, max_bad=0.05)  # the same stand-in in-process
    for epoch in (0, 1):
        assert all(torch.equal(x, y) for x, y in zip(epoch_batches(serial, epoch), got[epoch]))
    data.dataset.set_epoch(0)
    stand_in = data.dataset[int(np.flatnonzero([u.path == broken_path for u in data.dataset.utterances])[0])]
    assert stand_in.shape == (2, CROP) and stand_in.abs().max() > 0


def test_too_many_broken_files_are_a_data_error_in_the_training_process(tmp_path):
    data = broken_run(tmp_path, broken=6, workers=2, max_bad=0.05)
    with pytest.raises(DataError) as info:
        for epoch in (0, 1):
            epoch_batches(data, epoch)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message and "DataLoader worker" not in message
    assert "while training" in message and "max_bad_files=0.05" in message and "--set max_bad_files=F" in message
    counted = int(message.split(" ", 1)[0])  # refused once more than 2 of 40 are met; workers may have met more
    assert 3 <= counted <= 6 and message.startswith(f"{counted} of 40 training files ({counted / 40:.1%}) are unreadable")
    named = message.split("skip more): ", 1)[1].split("; ")
    broken = {str(tmp_path / "audio" / f"{3 + 7 * k}.wav") for k in range(6)}
    assert set(named[: min(counted, 5)]) <= broken and len(named) == min(counted, 5) + (counted > 5)


def test_a_dataset_built_from_utterances_checks_each_distinct_file_once(tmp_path, opens):
    names = write_files(tmp_path, 5)
    utts = [Utterance(str(tmp_path / names[i % 5]), f"s{i % 5}", names[i % 5]) for i in range(100)]
    ds = TwoViewDataset(utts, RATE, CROP, seed=1, preload=False, log=quiet)
    assert len(ds) == 100 and sorted(opens) == sorted(str(tmp_path / n) for n in names)
    sampler = BatchSampler(ds.speaker_ids, 10, 1)
    assert [list(b) for b in sampler] == [list(b) for b in BatchSampler(ds.speakers, 10, 1)]
    loader = build_loader(ds, sampler, 0, CPU)
    assert len(list(loader)) == 10
