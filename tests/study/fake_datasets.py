"""Small fake VoxCeleb1/2, MUSAN and simulated-RIR trees with the real folder layouts and file names.

Audio is generated (a harmonic "voice" whose pitch depends on the speaker, with a slow amplitude wobble), so
nothing is read from outside the test's temporary folder. VoxCeleb2 is AAC `.m4a` made with ffmpeg when ffmpeg
is installed (`make_vox2(..., m4a=False)` writes the wav layout instead).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

RATE = 16000
FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(
    FFMPEG is None, reason="ffmpeg is not installed (.ci/run installs it; locally: apt-get install ffmpeg)"
)

VOX1_DEV = {"id10001": {"1zcIwhmdeo4": 2, "7gWzIy6yIIk": 1}, "id10002": {"C7k7C-PDvAA": 2}}
VOX1_TEST = {
    "id10270": {"5r0dWxy17C8": 2, "x6uYqmx31kE": 1},
    "id10271": {"1gtz-CUIygI": 2},
    "id10272": {"Uuts88DxtHY": 1, "O2k1TA4P5ns": 1},
}
VOX2_DEV = {"id00012": {"21Uxsk56VDQ": 2, "2DLq_Kkc1r8": 1}, "id00015": {"0fijmz4vTVU": 2}, "id00017": {"01dfn2spqyE": 2}}
VOX2_TEST = {"id09999": {"aaaaaaaaaaa": 1}}
"""Speaker -> video -> number of utterances (00001.wav, 00002.wav, ...)."""


def voice(seconds: float, pitch: float, seed: int, rate: int = RATE) -> np.ndarray:
    """A deterministic harmonic signal (int16) of `seconds` at fundamental `pitch` Hz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    x = sum(np.sin(2 * np.pi * pitch * k * t + rng.uniform(0, 6)) / k for k in range(1, 6))
    x = x * (1 + 0.6 * np.sin(2 * np.pi * rng.uniform(2, 5) * t)) + 0.05 * rng.standard_normal(t.size)
    return (0.25 * x / np.abs(x).max() * 32767).astype(np.int16)


def write_wav(path: Path, seconds: float, seed: int, rate: int = RATE, pitch: float = 150.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, voice(seconds, pitch, seed, rate), rate, subtype="PCM_16")
    return path


def utterances(spec: dict[str, dict[str, int]]) -> list[tuple[str, str]]:
    """(`<spk>/<video>/<utt>` without suffix, speaker) for every utterance of a spec, sorted."""
    return sorted((f"{s}/{v}/{k:05d}", s) for s, videos in spec.items() for v, n in videos.items() for k in range(1, n + 1))


def _pitch(speaker: str) -> float:
    return 90.0 + (int(speaker[2:]) * 37) % 160


def make_vox1(root: Path, lists: bool = True) -> Path:
    """VoxCeleb1 as the official zips extract (`wav/<spk>/<video>/<utt>.wav`), the cleaned trial lists beside it."""
    for k, (name, speaker) in enumerate(utterances({**VOX1_DEV, **VOX1_TEST})):
        write_wav(root / "wav" / f"{name}.wav", 4.2 + 0.1 * (k % 4), seed=k, pitch=_pitch(speaker))
    if lists:
        for filename, text in official_lists().items():
            (root / filename).write_text(text)
    return root


def official_lists() -> dict[str, str]:
    """The user's copies of veri_test2.txt (test speakers only), list_test_all2.txt and list_test_hard2.txt."""
    test = [f"{n}.wav" for n, _ in utterances(VOX1_TEST)]
    every = [f"{n}.wav" for n, _ in utterances({**VOX1_DEV, **VOX1_TEST})]

    def pairs(names: list[str], step: int) -> str:
        lines = []
        for i, a in enumerate(names):
            for b in names[i + 1 :: step]:
                lines.append(f"{int(a.split('/')[0] == b.split('/')[0])} {a} {b}")
        return "\n".join(lines) + "\n"

    return {"veri_test2.txt": pairs(test, 1), "list_test_all2.txt": pairs(every, 2), "list_test_hard2.txt": pairs(every, 3)}


def make_vox2(root: Path, m4a: bool = True) -> Path:
    """VoxCeleb2 as `dev/aac/<spk>/<video>/<utt>.m4a` (plus a `test/aac` speaker that must be ignored), or
    `dev/wav/...wav` when `m4a` is False."""
    for part, spec in (("dev", VOX2_DEV), ("test", VOX2_TEST)):
        for k, (name, speaker) in enumerate(utterances(spec)):
            wav = write_wav(root / part / "wav" / f"{name}.wav", 4.5, seed=100 + k, pitch=_pitch(speaker))
            if m4a:
                target = root / part / "aac" / f"{name}.m4a"
                target.parent.mkdir(parents=True, exist_ok=True)
                subprocess.run([FFMPEG, "-nostdin", "-loglevel", "error", "-y", "-i", str(wav), "-c:a", "aac",
                                "-b:a", "48k", str(target)], check=True)
        if m4a:
            shutil.rmtree(root / part / "wav")
    return root


MUSAN_FILES = {
    "noise/free-sound/noise-free-sound-0000.wav": 17.0,
    "noise/sound-bible/noise-sound-bible-0001.wav": 8.0,
    "speech/librivox/speech-librivox-0000.wav": 9.5,
    "speech/us-gov/speech-us-gov-0003.wav": 5.0,
    "music/fma/music-fma-0000.wav": 25.0,
}
"""MUSAN file -> seconds: 17 s gives two 8 s chunks, 8 s exactly one, 5 s none (too short)."""


def make_musan(root: Path) -> Path:
    """`musan/<category>/<subset>/<name>.wav` plus the README and ANNOTATIONS files the real set has."""
    for k, (name, seconds) in enumerate(MUSAN_FILES.items()):
        write_wav(root / "musan" / name, seconds, seed=200 + k)
        (root / "musan" / Path(name).parent / "ANNOTATIONS").write_text("file info\n")
    (root / "musan" / "README").write_text("MUSAN\n")
    return root


RIR_FILES = [
    f"{size}/Room{room:03d}/Room{room:03d}-{k:05d}.wav"
    for size, room in (("smallroom", 1), ("mediumroom", 1), ("largeroom", 2))
    for k in (1, 2)
]


def make_rirs(root: Path) -> Path:
    """`RIRS_NOISES/simulated_rirs/<size>/Room<k>/...wav`, and real RIRs / point-source noises that are not used."""
    rng = np.random.default_rng(7)
    for k, name in enumerate(RIR_FILES):
        n = 4000 + 1000 * k
        h = rng.standard_normal(n) * np.exp(-np.arange(n) / (800 + 200 * k))
        h[40 + k] = 3.0
        path = root / "RIRS_NOISES" / "simulated_rirs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (h / np.abs(h).max() * 0.9).astype(np.float32), RATE, subtype="PCM_16")
    write_wav(root / "RIRS_NOISES" / "pointsource_noises" / "noise-free-sound-0001.wav", 2.0, seed=300)
    write_wav(root / "RIRS_NOISES" / "real_rirs_isotropic_noises" / "air_type1_air_binaural_lecture_0_1.wav", 1.0, seed=301)
    return root


def prepared_root(base: Path, m4a: bool) -> tuple[Path, dict]:
    """Fake sources under `base` prepared into `base/root` with the project's commands; (root, summaries)."""
    from study.datasets.musan import split_musan
    from study.datasets.rirs import index_rirs
    from study.datasets.voxceleb import prepare_voxceleb

    vox1, vox2 = make_vox1(base / "VoxCeleb1"), make_vox2(base / "VoxCeleb2", m4a=m4a)
    root = base / "root"
    summary = prepare_voxceleb(vox1, root, vox2, workers=2, progress=False, log=lambda *_: None)
    musan = split_musan(make_musan(base / "MUSAN"), root / "musan_split", workers=2, progress=False)
    rirs = index_rirs(make_rirs(base / "RIRS"), root, workers=2, progress=False)
    return root, {"voxceleb": summary, "musan": musan, "rirs": rirs}
