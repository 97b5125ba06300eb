"""m4a -> wav conversion with the real ffmpeg: resumable, verified, failures reported and left out."""

import subprocess

import numpy as np
import pytest
import soundfile as sf

from study.datasets.convert import ConversionError, convert_all, partial_path, verify_wav
from tests.study.fake_datasets import FFMPEG, needs_ffmpeg, write_wav


def m4a(path, seconds=2.0, seed=0, rate=16000, channels=1):
    """An AAC file made by ffmpeg from generated audio."""
    wav = write_wav(path.with_suffix(".src.wav"), seconds, seed, rate=rate)
    if channels == 2:
        data, _ = sf.read(wav, dtype="int16")
        sf.write(wav, np.stack([data, data // 2], axis=1), rate, subtype="PCM_16")
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([FFMPEG, "-nostdin", "-loglevel", "error", "-y", "-i", str(wav), "-c:a", "aac", str(path)], check=True)
    wav.unlink()
    return path


@needs_ffmpeg
def test_resumable_and_verified(tmp_path):
    sources = [m4a(tmp_path / "src" / f"{k}.m4a", seconds=1.5 + k, seed=k) for k in range(3)]
    sources.append(m4a(tmp_path / "src" / "stereo44k.m4a", seconds=2.0, rate=44100, channels=2))
    jobs = [(s, tmp_path / "out" / "v" / f"{s.stem}.wav") for s in sources]

    first = convert_all(jobs, FFMPEG, workers=2, progress=False)
    assert (first.converted, first.skipped, first.failed) == (4, 0, [])
    for (source, output), seconds in zip(jobs, [1.5, 2.5, 3.5, 2.0]):
        assert verify_wav(output) == pytest.approx(seconds * 16000, abs=0.1 * 16000)
    stamps = {out: out.stat().st_mtime_ns for _, out in jobs}

    second = convert_all(jobs, FFMPEG, workers=2, progress=False)
    assert (second.converted, second.skipped) == (0, 4)
    assert {out: out.stat().st_mtime_ns for _, out in jobs} == stamps

    # an interrupted run: one output never renamed into place, its partial file left behind
    jobs[1][1].unlink()
    partial_path(jobs[1][1]).write_bytes(b"RIFF half a file")
    third = convert_all(jobs, FFMPEG, workers=2, progress=False)
    assert (third.converted, third.skipped) == (1, 3)
    assert verify_wav(jobs[1][1]) > 0 and not partial_path(jobs[1][1]).exists()


@needs_ffmpeg
def test_a_corrupt_source_is_reported_and_nothing_is_left_for_it(tmp_path):
    good = m4a(tmp_path / "good.m4a")
    bad = tmp_path / "bad.m4a"
    bad.write_bytes(good.read_bytes()[:200])  # a truncated download
    empty = tmp_path / "empty.m4a"
    empty.write_bytes(b"")
    jobs = [(p, tmp_path / "out" / f"{p.stem}.wav") for p in (good, bad, empty)]
    report = convert_all(jobs, FFMPEG, workers=2, progress=False)
    assert report.converted == 1 and len(report.failed) == 2
    assert report.failed[0].startswith(f"{bad}: ") and report.failed[1].startswith(f"{empty}: ")
    assert report.failed_outputs == {str(jobs[1][1]), str(jobs[2][1])}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.wav"]


def test_verify_rejects_what_training_cannot_use(tmp_path):
    tone = (np.sin(np.arange(1600) / 5) * 8000).astype(np.int16)
    cases = {
        "rate.wav": (tone, 8000, "PCM_16", "sample rate 8000 Hz, expected 16000 Hz"),
        "stereo.wav": (np.stack([tone, tone], 1), 16000, "PCM_16", "2 channels, expected mono"),
        "float.wav": (tone / 32768.0, 16000, "FLOAT", "expected 16-bit PCM wav, got WAV/FLOAT"),
        "empty.wav": (tone[:0], 16000, "PCM_16", "zero-length audio"),
    }
    for name, (data, rate, subtype, reason) in cases.items():
        sf.write(tmp_path / name, data, rate, subtype=subtype)
        with pytest.raises(ConversionError, match=reason):
            verify_wav(tmp_path / name)
    sf.write(tmp_path / "ok.wav", tone, 16000, subtype="PCM_16")
    assert verify_wav(tmp_path / "ok.wav") == 1600
    (tmp_path / "cut.wav").write_bytes((tmp_path / "ok.wav").read_bytes()[:1000])
    with pytest.raises(ConversionError, match="cut.wav: truncated"):
        verify_wav(tmp_path / "cut.wav")
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(ConversionError, match="junk.wav: unreadable"):
        verify_wav(tmp_path / "junk.wav")
