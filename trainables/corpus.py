"""The embedded corpus: a small synthetic multi-speaker speech corpus, generated once and cached.

Used when no dataset is configured, so the whole study runs on a laptop. Speech is made by
source-filter synthesis: a Rosenberg glottal pulse train (phase-accumulated F0 contour) plus
aspiration and frication noise, shaped frame by frame in the STFT domain by parallel formant
resonances. What is stable per speaker: mean F0 and intonation range, vocal-tract length (formant
scale), per-vowel formant idiosyncrasies, formant amplitudes and bandwidths, glottal open quotient
and skew (spectral tilt), breathiness, speaking rate, preferred vowels / phone classes / frication
places (an accent), and a fixed resonance. What changes per utterance: the phone sequence and
durations, the F0 contour, faint background noise (40-60 dB SNR) and the peak level. So the only thing that two
crops of one utterance share *and* that generalises across utterances is the speaker.

One recording setup, no per-utterance channel: whatever differs between utterances but not within one (a random
EQ, a noise colour and level) is shared by the two crops of an utterance that SimCLR and MoCo contrast, so the
loss can be lowered by telling recordings apart instead of voices. Measured (SimCLR m = 0.2, tau = 0.012, 160
steps of 64 1 s views, learning rate 3e-3 halved each epoch; the same 40 test voices): 18.8 % EER with v3's channel
(a random gentle EQ per utterance, noise at 20-40 dB SNR), 14.4 % without the EQ, 13.0 % with the EQ and noise at
40-60 dB, 8.9 % without both. The corpus's noise/ and rir/ folders
are there for augmentation, as MUSAN and RIRs are for VoxCeleb.

Sizes (CORPUS_VERSION 4): 512 training speakers x 4 utterances and 100 test speakers x 6 utterances, 2-3.5 s
each. Many short utterances rather than a few long ones: with 512 utterances of 3-6 s (256 speakers x 2) the
contrastive loss kept falling over 200-400 steps while EER rose again (16.2 % -> 20.7 %): the encoder learns to
tell the utterances apart, not the speakers. 100 test speakers (3000 balanced trials) rather than v3's 40 keep a
run's EER from hanging on a few voices. Test voices come from their own random streams, so they do not change
with the training set.
Calibration: a trivial baseline (cosine of z-scored per-utterance mean+std of 40 log-mels) gives 25.3 % EER on
trials.txt.

Layout under the root (every path in the lists is relative to the root):
    train/<spk>/<utt>.flac, train.csv (`File,Speaker`)
    test/<spk>/<utt>.flac,  trials.txt (`label path1 path2`, 1 = same speaker, balanced)
    noise/{noise,speech,music}/*.flac (MUSAN-style), rir/*.flac, README.md
All audio is 16 kHz mono 16-bit FLAC. Everything derives from one integer seed: bit-identical runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import soundfile as sf

CORPUS_VERSION = 4
"""Bump whenever the generator's output changes; the cache folder is `embedded-v<CORPUS_VERSION>`."""
SAMPLE_RATE = 16000
TRAIN_MANIFEST = "train.csv"
TRIALS = "trials.txt"
NOISE_DIR = "noise"
RIR_DIR = "rir"
README = "README.md"
COMPLETE_MARKER = ".complete"
CACHE_ENV = "MARGIN_STUDY_CACHE"
DEFAULT_SEED = 20240517

_N_FFT, _HOP = 512, 128  # synthesis STFT: 32 ms Hann window, 8 ms hop (75 % overlap)
_PAD = _N_FFT - _HOP
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_N_FFT) / _N_FFT)).astype(np.float32)  # periodic Hann
_FREQS = np.fft.rfftfreq(_N_FFT, 1.0 / SAMPLE_RATE).astype(np.float32)
_FREQS_NZ = np.maximum(_FREQS, 20.0)
_LOG2_F = np.log2(_FREQS_NZ / 1000.0)

# Vowel formant targets F1-F5 (Hz), Peterson & Barney-like adult values: i I E ae a O U u V 3r.
_VOWELS = np.array(
    [[270, 2290, 3010, 3500, 4500], [390, 1990, 2550, 3500, 4500], [530, 1840, 2480, 3500, 4500],
     [660, 1720, 2410, 3500, 4500], [730, 1090, 2440, 3500, 4500], [570, 840, 2410, 3500, 4500],
     [440, 1020, 2240, 3500, 4500], [300, 870, 2240, 3500, 4500], [640, 1190, 2390, 3500, 4500],
     [490, 1350, 1690, 3300, 4500]], dtype=np.float32)
_NASAL = np.array([250, 1100, 2300, 3300, 4500], dtype=np.float32)
_FORMANT_AMPS = np.array([1.0, 0.6, 0.35, 0.2, 0.12], dtype=np.float32)
_BANDWIDTHS = np.array([60, 90, 140, 200, 260], dtype=np.float32)
# Phone kinds: vowel, nasal, fricative, stop (closure + burst), pause; mean probabilities, durations.
_KIND_P = np.array([0.63, 0.10, 0.20, 0.05, 0.02])
_DUR_LO_MS = np.array([70, 50, 60, 50, 80], dtype=np.float64)
_DUR_HI_MS = np.array([200, 100, 150, 90, 250], dtype=np.float64)
_LEAD_MS = (24.0, 75.0)  # leading silence
_SPLIT_STREAMS = {"train": 0, "test": 6}  # random-stream keys of each split's voices (key) and utterances (key + 1)
# Frication places: (centre Hz, width in octaves, level): s, sh, f, velar.
_FRICATIVES = np.array([[5500, 0.5, 0.30], [2800, 0.6, 0.30], [4500, 2.5, 0.08], [1800, 0.5, 0.15]])


@dataclass(frozen=True)
class _Voice:
    """Stable characteristics of one synthetic speaker."""

    f0: float  # mean F0, Hz
    f0_range: float  # intonation standard deviation, semitones
    vtl: float  # formant frequency scale (1 / vocal-tract length)
    vowel_shift: np.ndarray  # (10, 5) idiosyncratic multiplicative formant offsets
    vowel_p: np.ndarray  # (10,) preferred vowel distribution (accent / idiolect)
    kind_p: np.ndarray  # (5,) phone-kind distribution
    place_p: np.ndarray  # (4,) frication-place distribution
    formant_amp: np.ndarray  # (5,) formant amplitudes (voice quality)
    bw_scale: float  # formant bandwidth scale
    open_quotient: float
    skew: float  # opening fraction of the open phase
    breathiness: float
    rate: float  # phone duration scale
    colour_db: np.ndarray  # (bins,) fixed speaker resonance + high-frequency tilt, dB


def _rng(seed: int, *keys: int) -> np.random.Generator:
    """An independent, reproducible stream per (seed, purpose, index...)."""
    return np.random.default_rng([seed, *keys])


def _bump_db(centre: float, width_oct: float, gain_db: float) -> np.ndarray:
    return gain_db * np.exp(-0.5 * ((_LOG2_F - np.log2(centre / 1000.0)) / width_oct) ** 2)


def _make_voice(rng: np.random.Generator) -> _Voice:
    log_f0 = rng.uniform(np.log(85.0), np.log(260.0))
    lowness = (np.log(260.0) - log_f0) / (np.log(260.0) - np.log(85.0))  # 0 = high voice, 1 = low
    vtl = float(np.clip(np.exp(0.2 - 0.3 * lowness + rng.normal(0.0, 0.07)), 0.8, 1.25))
    colour = _bump_db(rng.uniform(2500, 5500), rng.uniform(0.15, 0.4), rng.uniform(3, 9.0))
    colour = colour + rng.normal(0.0, 1.5) * np.maximum(_LOG2_F, 0.0)
    return _Voice(
        f0=float(np.exp(log_f0)), f0_range=float(rng.uniform(1.0, 3.5)), vtl=vtl,
        vowel_shift=np.exp(rng.normal(0.0, 0.12, size=(len(_VOWELS), 5))).astype(np.float32),
        formant_amp=(_FORMANT_AMPS * np.exp(rng.normal(0.0, 0.3, 5))).astype(np.float32),
        vowel_p=rng.dirichlet(np.full(len(_VOWELS), 1.0)), kind_p=rng.dirichlet(_KIND_P * 20.0),
        place_p=rng.dirichlet(np.full(len(_FRICATIVES), 1.0)),
        bw_scale=float(rng.uniform(0.8, 1.5)), open_quotient=float(rng.uniform(0.4, 0.8)),
        skew=float(rng.uniform(0.55, 0.8)), breathiness=float(np.exp(rng.uniform(np.log(0.03), np.log(0.5)))),
        rate=float(rng.uniform(0.85, 1.2)), colour_db=colour.astype(np.float32))


def _stft(x: np.ndarray) -> np.ndarray:
    """(n,) -> (frames, bins); frames = ceil(n / hop) + 3."""
    extra = (-len(x)) % _HOP
    xp = np.pad(x, (_PAD, _PAD + extra))
    frames = np.lib.stride_tricks.sliding_window_view(xp, _N_FFT)[::_HOP]
    return np.fft.rfft(frames * _WINDOW, axis=1)


def _istft(spec: np.ndarray, n: int) -> np.ndarray:
    """Weighted overlap-add inverse of `_stft` (Hann^2 at 75 % overlap sums to 1.5)."""
    frames = np.fft.irfft(spec, n=_N_FFT, axis=1).astype(np.float32) * _WINDOW
    k = _N_FFT // _HOP
    out = np.zeros((len(frames) + k - 1, _HOP), dtype=np.float32)
    for j in range(k):
        out[j : j + len(frames)] += frames[:, j * _HOP : (j + 1) * _HOP]
    return out.reshape(-1)[_PAD : _PAD + n] / 1.5


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average along axis 0 with edge padding (coarticulation, gain ramps)."""
    kernel = np.ones(width, dtype=np.float32) / width
    xp = np.pad(x, [(width // 2, width - 1 - width // 2)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    c = np.cumsum(np.concatenate([np.zeros_like(xp[:1]), xp]), axis=0, dtype=np.float64)
    return ((c[width:] - c[:-width]) * kernel[0]).astype(np.float32)


def _phone_tracks(rng: np.random.Generator, voice: _Voice, n_frames: int):
    """Frame-rate tracks: formants (frames, 5), voiced gain, frication gain and place (frames,)."""
    n_phones = n_frames // 3 + 4
    kinds = rng.choice(len(_KIND_P), size=n_phones, p=voice.kind_p)
    kinds[0] = 4  # leading silence
    dur_ms = rng.uniform(_DUR_LO_MS[kinds], _DUR_HI_MS[kinds]) * voice.rate
    dur_ms[0] = rng.uniform(*_LEAD_MS)
    dur = np.maximum(3, np.round(dur_ms / (1000.0 * _HOP / SAMPLE_RATE))).astype(np.int64)
    vowel = rng.choice(len(_VOWELS), size=n_phones, p=voice.vowel_p)
    formants = _VOWELS[vowel] * voice.vowel_shift[vowel] * np.exp(rng.normal(0, 0.03, (n_phones, 5)))
    formants[kinds == 1] = _NASAL * np.exp(rng.normal(0, 0.03, (int((kinds == 1).sum()), 5)))
    formants = (formants * voice.vtl).astype(np.float32)
    voiced = np.select([kinds == 0, kinds == 1], [rng.uniform(0.6, 1.0, n_phones), 0.3], 0.0)
    place = rng.choice(len(_FRICATIVES), size=n_phones, p=voice.place_p)
    fric = np.where(kinds == 2, _FRICATIVES[place, 2] * rng.uniform(0.7, 1.3, n_phones), 0.0)

    index = np.repeat(np.arange(n_phones), dur)[:n_frames]
    fric_frames = fric[index].astype(np.float32)
    ends = np.cumsum(dur)[kinds == 3]  # stop bursts: the last two frames of each closure
    for back in (1, 2):
        burst = ends[ends - back < n_frames] - back
        fric_frames[burst] = 0.4
    return (_smooth(formants[index], 7), _smooth(voiced[index].astype(np.float32), 3),
            _smooth(fric_frames, 2), place[index])


def _vowel_envelope(formants: np.ndarray, voice: _Voice) -> np.ndarray:
    """Parallel formant filter: sum of resonance magnitudes |1 / (1 + j (f - Fk) / (Bk / 2))|, (frames, bins)."""
    fk = formants[:, :, None]
    half_bw = (_BANDWIDTHS * voice.bw_scale / 2.0)[None, :, None]
    peaks = 1.0 / np.sqrt(1.0 + ((_FREQS[None, None, :] - fk) / half_bw) ** 2)
    return np.einsum("fkb,k->fb", peaks, voice.formant_amp) + 0.003


def _synthesize(rng: np.random.Generator, voice: _Voice, n: int) -> np.ndarray:
    """STFT (frames, bins) of clean speech of n samples for `voice` (no channel)."""
    n_frames = (n + (-n) % _HOP) // _HOP + 3
    formants, voiced, fric, place = _phone_tracks(rng, voice, n_frames)
    # F0: declination + random intonation knots every ~0.4 s + slow jitter, in semitones.
    t = (np.arange(n_frames) * _HOP - _PAD + _N_FFT // 2) / SAMPLE_RATE
    knots_t = np.arange(-0.4, t[-1] + 0.8, 0.4)
    semitones = (rng.uniform(1.0, 3.0) * (1 - 2 * t / max(t[-1], 1e-3))
                 + np.interp(t, knots_t, rng.normal(0, voice.f0_range, len(knots_t)))
                 + _smooth(rng.normal(0, 0.3, n_frames).astype(np.float32), 3))
    f0 = np.interp(np.arange(n), t * SAMPLE_RATE, voice.f0 * 2.0 ** (semitones / 12.0))
    # Rosenberg glottal flow from the phase; its derivative (lip radiation) is the excitation.
    theta = (np.cumsum(f0 / SAMPLE_RATE) + rng.uniform()) % 1.0
    tp, tn = voice.open_quotient * voice.skew, voice.open_quotient * (1 - voice.skew)
    flow = np.where(theta < tp, 0.5 * (1 - np.cos(np.pi * theta / tp)),
                    np.where(theta < tp + tn, np.cos(np.pi * (theta - tp) / (2 * tn)), 0.0))
    excitation = np.diff(flow, prepend=flow[0]) * (SAMPLE_RATE / f0)
    excitation /= excitation.std() + 1e-9
    noise = rng.standard_normal(n)
    source = (excitation + voice.breathiness * noise * (0.5 + flow)).astype(np.float32)
    frication = rng.standard_normal(n).astype(np.float32)

    shapes = np.stack([np.exp(-0.5 * ((_LOG2_F - np.log2(c * voice.vtl / 1000)) / w) ** 2)
                       * (_FREQS_NZ**2 / (_FREQS_NZ**2 + 1000.0**2)) for c, w, _ in _FRICATIVES])
    spec = (_stft(source) * (voiced[:, None] * _vowel_envelope(formants, voice))
            + _stft(frication) * (fric[:, None] * shapes[place].astype(np.float32)))
    return spec * (10.0 ** (voice.colour_db / 20.0))[None, :]


def _coloured_noise(rng: np.random.Generator, n: int, slope_db_oct: float) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE), 20.0)
    x = np.fft.irfft(spec * (f / 1000.0) ** (slope_db_oct / 6.02), n=n)
    return (x / (x.std() + 1e-12)).astype(np.float32)


def _utterance(rng: np.random.Generator, voice: _Voice, n: int) -> np.ndarray:
    """Speech with faint background noise (40-60 dB SNR), peak-normalised to -6..-1 dBFS."""
    speech = _synthesize(rng, voice, n)
    energy = np.sum(np.abs(speech) ** 2, axis=1)
    active = np.mean(energy[energy > 0.01 * energy.max()])
    slope = rng.uniform(-4.0, -2.0) * _LOG2_F / 20.0
    noise = _stft(rng.standard_normal(n).astype(np.float32)) * (10.0**slope)
    snr_db = rng.uniform(40.0, 60.0)
    noise *= np.sqrt(active / np.mean(np.sum(np.abs(noise) ** 2, axis=1)) * 10.0 ** (-snr_db / 10.0))
    x = _istft(speech + noise, n)
    return x * (10.0 ** (rng.uniform(-6.0, -1.0) / 20.0) / (np.abs(x).max() + 1e-9))


def _write(path: Path, x: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.clip(np.round(np.asarray(x, dtype=np.float64) * 32767.0), -32768, 32767).astype(np.int16)
    sf.write(str(path), pcm, SAMPLE_RATE, format="FLAC", subtype="PCM_16")


def _peak(x: np.ndarray, level: float = 0.9) -> np.ndarray:
    return x * (level / (np.abs(x).max() + 1e-12))


def _noise_files(out: Path, seed: int, count: int, seconds: float) -> None:
    """MUSAN-style noise/{noise,speech,music}: coloured/hum/impulsive noise, babble, synthetic music."""
    n = int(round(seconds * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    for i in range(count):
        rng = _rng(seed, 2, 0, i)
        kind = i % 4
        x = _coloured_noise(rng, n, [0.0, -3.0, -6.0, -3.0][kind])
        if kind == 3:  # mains hum plus rain-like clicks
            hum = sum(np.sin(2 * np.pi * k * rng.choice([50.0, 60.0]) * t) / k for k in range(1, 6))
            clicks = np.zeros(n)
            clicks[rng.integers(0, n, size=int(30 * seconds))] = rng.normal(0, 8, int(30 * seconds))
            x = 0.3 * x + hum + np.convolve(clicks, np.exp(-np.arange(80) / 10.0))[:n]
        _write(out / NOISE_DIR / "noise" / f"noise-{i:02d}.flac", _peak(x * (1 + 0.5 * np.sin(
            2 * np.pi * rng.uniform(0.1, 1.0) * t))))
    for i in range(count):  # babble: 4-7 overlapping talkers that are neither train nor test speakers
        rng = _rng(seed, 2, 1, i)
        x = np.zeros(n, dtype=np.float32)
        for j in range(int(rng.integers(4, 8))):
            x += _utterance(_rng(seed, 2, 2, i, j), _make_voice(_rng(seed, 5, i, j)), n)
        _write(out / NOISE_DIR / "speech" / f"speech-{i:02d}.flac", _peak(x))
    for i in range(count):  # music: notes of a random scale with harmonic timbre, bass and percussion
        rng = _rng(seed, 2, 3, i)
        x = np.zeros(n)
        beat = 60.0 / rng.uniform(80, 160)
        root = rng.uniform(110, 330)
        scale = root * 2.0 ** (np.array([0, 2, 4, 5, 7, 9, 11, 12]) / 12.0)
        harmonics = np.arange(1, 7)
        timbre = harmonics ** -rng.uniform(0.8, 2.0)
        for k, start in enumerate(np.arange(0.0, seconds, beat / 2)):
            s = int(start * SAMPLE_RATE)
            m = min(n - s, int(beat * rng.choice([0.5, 1.0, 2.0]) * SAMPLE_RATE))
            tt = np.arange(m) / SAMPLE_RATE
            decay = np.exp(-tt / rng.uniform(0.15, 0.6)) * np.minimum(1.0, tt / 0.01)
            for f in (rng.choice(scale), root / 2 if k % 2 == 0 else None):
                if f is not None:
                    x[s : s + m] += decay * (np.sin(2 * np.pi * f * np.outer(tt, harmonics)) @ timbre)
            if k % 2 == 0:
                x[s : s + m] += 0.5 * rng.standard_normal(m) * np.exp(-tt / 0.03)
        _write(out / NOISE_DIR / "music" / f"music-{i:02d}.flac", _peak(x))


def _rirs(out: Path, seed: int, count: int) -> None:
    """Exponentially decaying room impulse responses, RT60 0.2-0.6 s, highs decaying faster."""
    for i in range(count):
        rng = _rng(seed, 3, i)
        rt60 = rng.uniform(0.2, 0.6)
        n = int(rt60 * 100) * (SAMPLE_RATE // 100)
        t = np.arange(n) / SAMPLE_RATE
        delay = int(rng.uniform(0.001, 0.004) * SAMPLE_RATE)
        spec = np.fft.rfft(rng.standard_normal(n))
        low = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE) < rng.uniform(1000, 3000)
        lo, hi = np.fft.irfft(spec * low, n=n), np.fft.irfft(spec * ~low, n=n)
        tail = lo * np.exp(-6.9 * t / rt60) + hi * np.exp(-6.9 * t / (0.6 * rt60))
        tail *= np.clip((t - delay / SAMPLE_RATE) / 0.005, 0.0, 1.0)
        h = tail / np.sqrt(np.sum(tail**2))
        h[delay] += 10.0 ** (rng.uniform(-3.0, 6.0) / 20.0)  # direct path, DRR -3..6 dB
        early = delay + rng.integers(30, 650, size=6)
        h[early] += rng.choice([-1.0, 1.0], 6) * rng.uniform(0.1, 0.5, 6)
        _write(out / RIR_DIR / f"rir-{i:02d}.flac", _peak(h, 0.95))


def _speakers(out: Path, seed: int, split: str, first: int, count: int, utts: int,
              min_s: float, max_s: float) -> list[tuple[str, str]]:
    """Speakers `spk<first>`... of a split; each split draws its voices and utterances from its own streams, so
    the test speakers do not change with the number of training speakers."""
    stream = _SPLIT_STREAMS[split]
    rows = []
    for k, s in enumerate(range(first, first + count)):
        voice, spk = _make_voice(_rng(seed, stream, k)), f"spk{s:03d}"
        for u in range(utts):
            rng = _rng(seed, stream + 1, k, u)
            n = int(round(rng.uniform(min_s, max_s) * SAMPLE_RATE))
            rel = f"{split}/{spk}/utt{u:02d}.flac"
            _write(out / rel, _utterance(rng, voice, n))
            rows.append((rel, spk))
    return rows


def _trials(rng: np.random.Generator, rows: list[tuple[str, str]], per_class: int | None) -> list[str]:
    """All (or `per_class`) same-speaker pairs plus as many random different-speaker pairs."""
    labels = np.array([spk for _, spk in rows])
    i, j = np.triu_indices(len(rows), k=1)
    same = labels[i] == labels[j]
    tgt, non = np.flatnonzero(same), np.flatnonzero(~same)
    k = min(len(tgt), len(non), per_class if per_class is not None else len(tgt))
    pick = np.concatenate([rng.choice(tgt, k, replace=False), rng.choice(non, k, replace=False)])
    pick = pick[rng.permutation(len(pick))]
    swap = rng.uniform(size=len(pick)) < 0.5
    a, b = np.where(swap, j[pick], i[pick]), np.where(swap, i[pick], j[pick])
    return [f"{int(same[p])} {rows[x][0]} {rows[y][0]}" for p, x, y in zip(pick, a, b)]


def generate_corpus(out_dir: str | Path, seed: int = DEFAULT_SEED, n_train_speakers: int = 512,
                    n_train_utterances: int = 4, n_test_speakers: int = 100, n_test_utterances: int = 6,
                    min_seconds: float = 2.0, max_seconds: float = 3.5, trials_per_class: int | None = None,
                    n_noise_files: int = 4, noise_seconds: float = 8.0, n_rirs: int = 8) -> None:
    """Write the corpus into `out_dir` (created; must be empty). Pure function of its arguments.

    Test speakers follow the training speakers (`spk<index>`), so the two sets are disjoint.
    `trials_per_class=None` uses every same-speaker test pair and as many different-speaker pairs.
    """
    if n_test_speakers < 2 or n_test_utterances < 2 or n_train_speakers < 1 or n_train_utterances < 1:
        raise ValueError("need >= 1 training speaker/utterance and >= 2 test speakers and utterances")
    if not 0 < min_seconds <= max_seconds:
        raise ValueError(f"need 0 < min_seconds <= max_seconds, got {min_seconds}, {max_seconds}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    train = _speakers(out, seed, "train", 0, n_train_speakers, n_train_utterances, min_seconds, max_seconds)
    test = _speakers(out, seed, "test", n_train_speakers, n_test_speakers, n_test_utterances,
                     min_seconds, max_seconds)
    (out / TRAIN_MANIFEST).write_text("File,Speaker\n" + "".join(f"{f},{s}\n" for f, s in train))
    trials = _trials(_rng(seed, 4), test, trials_per_class)
    (out / TRIALS).write_text("".join(line + "\n" for line in trials))
    _noise_files(out, seed, n_noise_files, noise_seconds)
    _rirs(out, seed, n_rirs)
    (out / README).write_text(
        f"# margin-study embedded corpus, generator version {CORPUS_VERSION}\n\n"
        "Synthetic speech (source-filter synthesis) made by `trainables/corpus.py` so the study runs "
        "without a dataset. It is NOT real speech: numbers measured on it say nothing about VoxCeleb.\n\n"
        f"- seed {seed}; {SAMPLE_RATE} Hz mono 16-bit FLAC; utterances {min_seconds}-{max_seconds} s\n"
        f"- train: {n_train_speakers} speakers x {n_train_utterances} utterances, list `{TRAIN_MANIFEST}`\n"
        f"- test: {n_test_speakers} other speakers x {n_test_utterances} utterances, "
        f"{len(trials)} balanced trials in `{TRIALS}` (`label path1 path2`, 1 = same speaker)\n"
        f"- `{NOISE_DIR}/`: MUSAN-style noise/, speech/ (babble), music/, {n_noise_files} files each; "
        f"`{RIR_DIR}/`: {n_rirs} synthetic room impulse responses (RT60 0.2-0.6 s)\n"
        "- paths in the lists are relative to this folder\n")


# ----------------------------------------------------------------------------- caching

def default_cache_dir() -> Path:
    """`$MARGIN_STUDY_CACHE`, else `~/.cache/margin-study`."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "margin-study"


def corpus_dir_name(**options) -> str:
    """`embedded-v<N>` for the default corpus; non-default generator options add a short hash."""
    defaults = {k: p.default for k, p in inspect.signature(generate_corpus).parameters.items() if k != "out_dir"}
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TypeError(f"unknown generate_corpus option(s) {unknown}; known: {sorted(defaults)}")
    changed = {k: v for k, v in sorted(options.items()) if v != defaults[k]}
    name = f"embedded-v{CORPUS_VERSION}"
    if changed:
        name += "-" + hashlib.sha1(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:10]
    return name


def is_complete(root: Path) -> bool:
    return (root / COMPLETE_MARKER).is_file()


@contextlib.contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    """An advisory inter-process lock (saves duplicate work); correctness never depends on it."""
    try:
        import fcntl  # optional: POSIX only
        handle = open(path, "a")
    except (ImportError, OSError):
        yield
        return
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:  # e.g. a filesystem without flock: fall back to the atomic rename alone
            pass
        yield
    finally:
        handle.close()


def _discard(path: Path) -> None:
    """Move a folder aside atomically, then delete it (a concurrent discard is harmless)."""
    trash = path.with_name(f".{path.name}.trash-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def ensure_embedded_corpus(cache_dir: str | Path | None = None, log: Callable[[str], object] = print,
                           **options) -> Path:
    """The root of the embedded corpus, generated on first use and cached.

    Safe when several processes call it at once: each build goes into a private temporary folder
    next to the final one, gets a completion marker, and is renamed into place atomically; whoever
    loses the race discards its copy and uses the winner's. A folder without the marker is never used.
    `options` are `generate_corpus` arguments (for tests); non-default ones get their own folder.
    """
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    root = base / corpus_dir_name(**options)
    if is_complete(root):
        return root
    base.mkdir(parents=True, exist_ok=True)
    with _build_lock(base / f".{root.name}.lock"):
        if is_complete(root):
            return root
        if root.exists():
            log(f"discarding incomplete corpus folder {root}")
            _discard(root)
        for stale in base.glob(f".{root.name}.tmp-*"):  # left by killed builders, an hour or more ago
            with contextlib.suppress(OSError):
                if time.time() - stale.stat().st_mtime > 3600:
                    _discard(stale)
        tmp = base / f".{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            log(f"generating the embedded corpus (generator v{CORPUS_VERSION}) in {root} ...")
            start = time.perf_counter()
            generate_corpus(tmp, **options)
            (tmp / COMPLETE_MARKER).write_text(json.dumps({"version": CORPUS_VERSION, **options}) + "\n")
            try:
                os.rename(tmp, root)
            except OSError:
                if not is_complete(root):
                    raise
                log(f"another process finished {root} first; using its copy")
            else:
                log(f"embedded corpus ready in {time.perf_counter() - start:.1f} s: {root}")
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return root
