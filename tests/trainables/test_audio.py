import csv
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from trainables.audio import AudioError, audio_info, load_audio, resampled_length

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SPEECHOCEAN = DATA / "speechocean762"


def sine(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / rate)[np.argmax(spectrum)])


def write(path: Path, data: np.ndarray, rate: int = 16000, **kwargs) -> Path:
    sf.write(path, data, rate, **kwargs)
    return path


def cut(path: Path, keep: int) -> Path:
    data = path.read_bytes()
    assert keep < len(data)
    path.write_bytes(data[:keep])
    return path


def test_reads_pcm16_wav_exactly_as_float32(tmp_path):
    wave = sine(440, 16000, 0.5)
    path = write(tmp_path / "a.wav", wave, subtype="PCM_16")
    out = load_audio(path, 16000)
    expected, _ = sf.read(path, dtype="float32")
    assert out.dtype == np.float32 and out.shape == (8000,)
    np.testing.assert_array_equal(out, expected)
    assert np.abs(out - wave).max() < 1e-4
    assert audio_info(path) == (8000, 16000)


def test_flac_and_region_reads(tmp_path):
    wave = sine(300, 16000, 1.0)
    path = write(tmp_path / "a.flac", wave)
    full = load_audio(path, 16000)
    np.testing.assert_array_equal(load_audio(path, 16000, start=1234, frames=500), full[1234:1734])
    np.testing.assert_array_equal(load_audio(path, 16000, start=15800), full[15800:])
    # A region running past the end returns what exists.
    assert load_audio(path, 16000, start=15900, frames=500).shape == (100,)


def test_multichannel_is_averaged_to_mono(tmp_path):
    left, right = sine(200, 16000, 0.25), sine(700, 16000, 0.25, amplitude=0.25)
    path = write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    out = load_audio(path, 16000)
    assert out.ndim == 1
    np.testing.assert_allclose(out, (left + right) / 2, atol=1e-6)


def test_float_file_is_clipped_to_unit_range(tmp_path):
    path = write(tmp_path / "loud.wav", np.array([0.5, 1.5, -2.0, 0.25], dtype=np.float32), subtype="FLOAT")
    out = load_audio(path, 16000)
    np.testing.assert_array_equal(out, [0.5, 1.0, -1.0, 0.25])


@pytest.mark.parametrize("rate", [8000, 22050, 44100])
def test_other_rates_are_resampled_keeping_frequency(tmp_path, rate):
    seconds, freq = 1.0, 1000.0
    path = write(tmp_path / f"r{rate}.wav", sine(freq, rate, seconds), rate, subtype="PCM_16")
    out = load_audio(path, 16000)
    assert out.dtype == np.float32
    assert out.shape == (resampled_length(int(rate * seconds), rate, 16000),)
    assert abs(out.shape[0] - 16000) <= 1
    assert abs(peak_frequency(out, 16000) - freq) <= 2.0
    assert 0.3 < np.abs(out[2000:-2000]).max() <= 0.55
    # start/frames count target-rate samples.
    np.testing.assert_array_equal(load_audio(path, 16000, start=3000, frames=400), out[3000:3400])
    assert audio_info(path) == (int(rate * seconds), rate)


def test_resampled_length_matches_torchaudio_for_typical_sizes():
    assert resampled_length(44100, 44100, 16000) == 16000
    assert resampled_length(8001, 8000, 16000) == 16002
    assert resampled_length(100, 16000, 16000) == 100
    assert resampled_length(1, 48000, 16000) == math.ceil(1 / 3)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    for call in (lambda: load_audio(path, 16000), lambda: audio_info(path)):
        with pytest.raises(AudioError, match="missing") as info:
            call()
        assert str(path) in str(info.value) and info.value.path == str(path)


def test_empty_file_of_zero_bytes(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: empty file \(0 bytes\)"):
        load_audio(path, 16000)
    with pytest.raises(AudioError, match="empty file"):
        audio_info(path)


def test_zero_length_audio(tmp_path):
    path = write(tmp_path / "zero.wav", np.zeros(0, dtype=np.float32))
    with pytest.raises(AudioError, match=r"zero\.wav: zero-length"):
        load_audio(path, 16000)
    with pytest.raises(AudioError, match="zero-length"):
        audio_info(path)


def test_truncated_wav(tmp_path):
    path = write(tmp_path / "cut.wav", sine(440, 16000, 1.0), subtype="PCM_16")
    cut(path, 44 + 10000)
    for call in (lambda: load_audio(path, 16000), lambda: audio_info(path)):
        with pytest.raises(AudioError, match=r"cut\.wav: truncated"):
            call()


def test_truncated_flac(tmp_path):
    path = write(tmp_path / "cut.flac", np.random.default_rng(0).uniform(-0.5, 0.5, 32000).astype(np.float32))
    cut(path, path.stat().st_size // 2)
    for call in (lambda: load_audio(path, 16000), lambda: audio_info(path)):
        with pytest.raises(AudioError, match=r"cut\.flac: (truncated|unreadable or truncated)"):
            call()


def test_garbage_file(tmp_path):
    path = tmp_path / "garbage.flac"
    path.write_bytes(np.random.default_rng(1).bytes(3000))
    with pytest.raises(AudioError, match=r"garbage\.flac: unreadable"):
        load_audio(path, 16000)
    with pytest.raises(AudioError, match=r"garbage\.flac: unreadable"):
        audio_info(path)


def test_directory_is_not_audio(tmp_path):
    with pytest.raises(AudioError, match="directory"):
        audio_info(tmp_path)


def test_audio_error_is_a_value_error():
    err = AudioError("/x/y.wav", "missing")
    assert isinstance(err, ValueError) and str(err) == "/x/y.wav: missing" and err.reason == "missing"


@pytest.mark.skipif(not SPEECHOCEAN.is_dir(), reason=f"real speech data not found at {SPEECHOCEAN}")
def test_real_speechocean_flac():
    with open(SPEECHOCEAN / "metadata.csv", newline="") as f:
        row = next(csv.DictReader(f))
    path = SPEECHOCEAN / row["File"]
    frames, rate = audio_info(path)
    assert rate == 16000 and abs(frames / rate - float(row["Duration"])) < 0.01
    wave = load_audio(path, 16000)
    assert wave.shape == (frames,) and wave.dtype == np.float32
    assert 1e-3 < np.sqrt(np.mean(wave**2)) < 0.5
    half = load_audio(path, 8000)
    assert abs(half.shape[0] - frames / 2) <= 1


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_samples_in_a_float_file_are_caught_by_audio_info(tmp_path, bad):
    """Only float WAVs can hold NaN/inf: their check decodes the whole file, so a bad sample anywhere is found
    where files are counted (the trainer's list, the data check), not later during training."""
    wave = sine(440, 16000, 1.0)
    wave[123] = bad
    path = write(tmp_path / "float.wav", wave, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"float\.wav: 1 non-finite \(nan/inf\) samples"):
        audio_info(path)
    wave[123] = 0.0
    assert audio_info(write(tmp_path / "clean.wav", wave, subtype="DOUBLE")) == (16000, 16000)
