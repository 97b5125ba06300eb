from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import trainables.dataset as dataset_module
from trainables.dataset import DataError, TwoViewDataset
from trainables.manifest import Utterance

RATE, CROP = 16000, 400


def position_wav(path: Path, length: int, rate: int = RATE) -> Utterance:
    """A 16-bit file whose sample n holds the integer n, so a view reveals where it was cut."""
    sf.write(path, np.arange(length, dtype=np.int16), rate, subtype="PCM_16")
    return Utterance(path=str(path), speaker=path.stem.split("_")[0], name=path.name)


def positions(view: torch.Tensor) -> np.ndarray:
    return np.rint(view.numpy() * 32768).astype(np.int64)


@pytest.fixture
def corpus(tmp_path):
    lengths = [3000, 2 * CROP, 5000, 500, 1200, 4321]
    return [position_wav(tmp_path / f"s{i % 3}_{i}.wav", n) for i, n in enumerate(lengths)]


def quiet(_message: str) -> None:
    pass


def test_items_are_two_non_overlapping_contiguous_crops(corpus):
    ds = TwoViewDataset(corpus, RATE, CROP, seed=1, log=quiet)
    assert len(ds) == len(corpus) and ds.preloaded
    for epoch in range(5):
        ds.set_epoch(epoch)
        for i, utt in enumerate(corpus):
            views = ds[i]
            assert views.shape == (2, CROP) and views.dtype == torch.float32
            length = sf.info(utt.path).frames
            if length < 2 * CROP:
                continue
            a, b = positions(views)
            assert np.all(np.diff(a) == 1) and np.all(np.diff(b) == 1)
            assert 0 <= min(a[0], b[0]) and max(a[-1], b[-1]) < length
            assert abs(int(a[0]) - int(b[0])) >= CROP


def test_short_utterance_is_wrap_padded(corpus):
    ds = TwoViewDataset(corpus, RATE, CROP, seed=1, log=quiet)
    a, b = positions(ds[3])  # 500 samples < 2 crops: padded to 800, halves
    np.testing.assert_array_equal(a, np.arange(400))
    np.testing.assert_array_equal(b, np.concatenate([np.arange(400, 500), np.arange(0, 300)]))


def test_views_depend_only_on_seed_epoch_and_index(corpus):
    preloaded = TwoViewDataset(corpus, RATE, CROP, seed=7, log=quiet)
    on_demand = TwoViewDataset(corpus, RATE, CROP, seed=7, preload=False, log=quiet)
    assert not on_demand.preloaded
    for epoch in (0, 3):
        preloaded.set_epoch(epoch)
        on_demand.set_epoch(epoch)
        forward = [preloaded[i] for i in range(len(corpus))]
        backward = [on_demand[i] for i in reversed(range(len(corpus)))][::-1]
        for x, y in zip(forward, backward):
            torch.testing.assert_close(x, y, rtol=0, atol=0)
    preloaded.set_epoch(0)
    epoch0 = preloaded[0]
    preloaded.set_epoch(1)
    assert not torch.equal(epoch0, preloaded[0])
    other_seed = TwoViewDataset(corpus, RATE, CROP, seed=8, log=quiet)
    assert not torch.equal(epoch0, other_seed[0])


def test_on_demand_reads_only_the_crops(corpus, monkeypatch):
    calls = []
    real = dataset_module.load_audio

    def spy(path, sample_rate, start=0, frames=-1):
        calls.append((Path(path).name, start, frames))
        return real(path, sample_rate, start, frames)

    ds = TwoViewDataset(corpus, RATE, CROP, seed=1, preload=False, log=quiet)
    monkeypatch.setattr(dataset_module, "load_audio", spy)
    ds[2]  # 5000 samples
    assert len(calls) == 2 and all(frames == CROP for _, _, frames in calls)
    calls.clear()
    ds[3]  # 500 samples: the whole file is read and wrap-padded
    assert calls == [(Path(corpus[3].path).name, 0, -1)]


def test_falls_back_to_on_demand_when_too_big(corpus):
    messages = []
    ds = TwoViewDataset(corpus, RATE, CROP, seed=1, preload_max_bytes=1000, log=messages.append)
    assert not ds.preloaded
    assert any("not preloading" in m and "preload_max_bytes" in m for m in messages)
    reference = TwoViewDataset(corpus, RATE, CROP, seed=1, log=quiet)
    assert torch.equal(ds[0], reference[0])


def test_other_sample_rates_are_resampled(tmp_path):
    t = np.arange(8000) / 8000
    sf.write(tmp_path / "low.wav", 0.5 * np.sin(2 * np.pi * 500 * t), 8000, subtype="PCM_16")
    utts = [Utterance(str(tmp_path / "low.wav"), "a", "low.wav")]
    preloaded = TwoViewDataset(utts, RATE, CROP, seed=0, log=quiet)
    on_demand = TwoViewDataset(utts, RATE, CROP, seed=0, preload=False, log=quiet)
    x, y = preloaded[0], on_demand[0]
    assert x.shape == y.shape == (2, CROP)
    torch.testing.assert_close(x, y, rtol=0, atol=1 / 32768)
    assert 0.3 < x.abs().max() < 0.55


def bad_files(tmp_path: Path, good: int, bad: int) -> list[Utterance]:
    utts = [position_wav(tmp_path / f"g{i}_{i}.wav", 900) for i in range(good)]
    for i in range(bad):
        path = tmp_path / f"bad_{i}.wav"
        path.write_bytes(b"not audio at all" * 10)
        utts.insert(10 * i + 5, Utterance(str(path), f"bad{i}", path.name))
    return utts


@pytest.mark.parametrize("preload", [True, False])
def test_few_unreadable_files_are_skipped_and_logged(tmp_path, preload):
    utts = bad_files(tmp_path, good=99, bad=1)
    messages = []
    ds = TwoViewDataset(utts, RATE, CROP, seed=0, preload=preload, max_bad_fraction=0.05, log=messages.append)
    assert len(ds) == 99
    assert "bad_0.wav" not in {Path(u.path).name for u in ds.utterances}
    assert ds.speakers == [u.speaker for u in utts if not u.path.endswith("bad_0.wav")]
    skipped = [m for m in messages if m.startswith("skipped")]
    assert len(skipped) == 1
    assert skipped[0].startswith(f"skipped 1 unreadable training file(s) of 100: first: {tmp_path / 'bad_0.wav'}: ")
    assert "unreadable" in skipped[0].split("bad_0.wav: ", 1)[1]


def test_too_many_unreadable_files_refuse(tmp_path):
    utts = bad_files(tmp_path, good=90, bad=10)
    with pytest.raises(DataError, match=r"10 of 100 training files .* max_bad_files=0\.05") as info:
        TwoViewDataset(utts, RATE, CROP, seed=0, max_bad_fraction=0.05, log=quiet)
    assert str(tmp_path / "bad_0.wav") in str(info.value) and "and 5 more" in str(info.value)


def test_truncated_and_missing_files_are_skipped(tmp_path):
    utts = bad_files(tmp_path, good=20, bad=0)
    flac = tmp_path / "cut.flac"
    sf.write(flac, np.random.default_rng(0).uniform(-0.5, 0.5, 8000), RATE)
    flac.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    utts += [Utterance(str(flac), "x", "cut.flac"), Utterance(str(tmp_path / "gone.wav"), "y", "gone.wav")]
    messages = []
    ds = TwoViewDataset(utts, RATE, CROP, seed=0, max_bad_fraction=0.1, log=messages.append)
    assert len(ds) == 20
    assert any(m.startswith("skipped 2 unreadable training file(s) of 22") for m in messages)


def test_all_unreadable_refuses_even_with_lenient_threshold(tmp_path):
    utts = bad_files(tmp_path, good=0, bad=1)
    with pytest.raises(DataError, match="1 of 1 training files"):
        TwoViewDataset(utts, RATE, CROP, seed=0, max_bad_fraction=1.0, log=quiet)


def test_epoch_reaches_persistent_workers(corpus):
    ds = TwoViewDataset(corpus, RATE, CROP, seed=3, log=quiet)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=1, persistent_workers=True)
    seen = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        seen.append(torch.cat(list(loader)))
    for epoch in range(2):
        ds.set_epoch(epoch)
        assert torch.equal(seen[epoch], torch.stack([ds[i] for i in range(len(ds))]))
    assert not torch.equal(seen[0], seen[1])


@pytest.mark.parametrize("preload", [True, False])
def test_batched_fetch_equals_single_items_through_a_dataloader(corpus, preload):
    ds = TwoViewDataset(corpus, RATE, CROP, seed=3, preload=preload, log=quiet)
    ds.set_epoch(2)
    indices = [4, 0, 3, 3, 1]
    batch = ds.get_batch(indices)
    assert batch.shape == (5, 2, CROP) and batch.dtype == torch.float32
    torch.testing.assert_close(batch, torch.stack([ds[i] for i in indices]), rtol=0, atol=0)
    loader = torch.utils.data.DataLoader(dataset_module.BatchedViews(ds), sampler=[indices], batch_size=None)
    torch.testing.assert_close(next(iter(loader)), batch, rtol=0, atol=0)
