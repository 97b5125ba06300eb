"""One flat, frozen, validated training configuration.

Every field keeps the same spelling from the search space to the MLflow param to the table column.
Defaults are the paper's setup (Lepage & Dehak, Odyssey 2024, paper.md section 3.1); `PROFILES` holds
named overrides, e.g. the small CPU profile used by the embedded default.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

FRAMEWORKS = ("simclr", "moco")
PRECISIONS = ("fp32", "bf16")
EVAL_MODES = ("segments", "full")
MEL_WINDOWS = ("hamming", "hann")


class ConfigError(ValueError):
    """A configuration key or value that cannot be used; the message names the key and what is allowed."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs. Build it with `TrainConfig.from_dict` to get validation."""

    # --- contrastive objective
    framework: str = "simclr"
    """'simclr' (in-batch negatives) or 'moco' (momentum key encoder + FIFO queue of past keys)."""
    symmetric: bool = True
    """SimCLR only: 2N anchors with 2(N-1) negatives from both views (L^(S)); False = view 1 -> view 2 only."""
    margin: float = 0.1
    """Additive margin m subtracted from the positive cosine (NT-Xent-AM); 0 gives plain NT-Xent."""
    temperature: float = 1.0 / 30.0
    """Temperature tau; cosines are scaled by 1/tau."""
    projector: bool = False
    """Apply an MLP projector (embedding -> projector_hidden_dim -> ReLU -> projector_dim) before the loss."""
    projector_hidden_dim: int = 2048
    """Hidden width of the optional projector."""
    projector_dim: int = 256
    """Output width of the optional projector."""
    queue_size: int = 32768
    """MoCo only: number of past keys kept per view in the FIFO queue."""
    momentum: float = 0.999
    """MoCo only: EMA factor t of the key encoder, theta_k <- t*theta_k + (1-t)*theta_q."""

    # --- encoder and features
    encoder: str = "fast_resnet34"
    """Encoder name in the registry (trainables.encoders)."""
    embedding_dim: int = 512
    """Speaker-embedding size produced by the encoder."""
    n_mels: int = 40
    """Number of log-mel filterbanks."""
    mel_window: str = "hamming"
    """STFT window of the filterbank front end: 'hamming' or 'hann'."""
    sample_rate: int = 16000
    """Audio sample rate in Hz; other rates are resampled on load."""
    crop_seconds: float = 2.0
    """Length of each of the two training views, in seconds."""

    # --- optimisation
    batch_size: int = 200
    """Utterances per optimiser step over all workers (each gives two views)."""
    epochs: int = 150
    """Training epochs."""
    lr: float = 1e-3
    """Adam learning rate."""
    weight_decay: float = 0.0
    """Adam weight decay."""
    lr_decay: float = 0.95
    """Multiplicative learning-rate decay applied every lr_decay_epochs."""
    lr_decay_epochs: int = 5
    """Epochs between learning-rate decays."""
    seed: int = 1717
    """Seed of every random choice (sampling, crops, augmentation, initialisation)."""
    precision: str = "fp32"
    """'fp32' or 'bf16' (autocast for the encoder; loss and metrics stay fp32)."""
    channels_last: bool = False
    """Use the channels_last memory format for the convolutional encoder."""

    # --- sampling (paper Table 3)
    prevent_class_collisions: bool = False
    """Never put two utterances of one speaker in a batch (needs speaker labels)."""
    max_utterances_per_speaker: int = 0
    """Cap utterances per speaker each epoch to remove class imbalance (0 = no cap; needs speaker labels)."""
    max_utterances: int = 0
    """Use only the first N manifest rows (0 = all); for trying a profile on a slice."""

    # --- augmentation
    noise_prob: float = 1.0
    """Probability that a view gets additive noise (when a noise folder is given)."""
    reverb_prob: float = 1.0
    """Probability that a view is reverberated (when an RIR folder is given)."""

    # --- evaluation
    eval_every: int = 10
    """Evaluate every k epochs (the last epoch is always evaluated); 0 = only at the end."""
    eval_mode: str = "segments"
    """'segments': mean cosine over eval_segments x eval_segments evenly spaced crops; 'full': whole utterance."""
    eval_segments: int = 10
    """Segments per test utterance in 'segments' mode."""
    eval_segment_seconds: float = 3.515
    """Segment length in 'segments' mode (56240 samples at 16 kHz)."""

    # --- data (paths; empty = not used)
    data_root: str = ""
    """Folder the manifest and trial paths are relative to; empty = the embedded corpus."""
    train_manifest: str = ""
    """Training list, `File,Speaker` CSV (Speaker optional); relative to data_root unless absolute."""
    trials: str = ""
    """Trial list in VoxCeleb format `label path1 path2`; relative to data_root unless absolute."""
    noise_dir: str = ""
    """MUSAN-style noise folder (noise/, speech/, music/ subfolders, or flat = all 'noise')."""
    rir_dir: str = ""
    """Folder of room impulse responses."""
    max_bad_files: float = 0.01
    """Largest fraction of unreadable training files (rows of the list) that are skipped (counted, logged) before
    refusing; files that break while training count too, each replaced by a readable utterance."""
    loader_workers: int = -1
    """DataLoader worker processes reading audio: -1 = auto (none when the audio is preloaded, else one per CPU of
    the process but one, 1 to 8), 0 = in the training process."""
    preload: bool = True
    """Hold the training audio in memory (int16, each distinct file once) when it fits in preload_max_gb; else it
    is read on demand by the loader workers."""
    preload_max_gb: float = 4.0
    """Largest training set (decoded, int16) held in memory."""

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        """Build a validated config; unknown keys, wrong types and impossible values raise ConfigError."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"unknown config key(s) {unknown}; known keys: {sorted(known)}")
        coerced = {name: _coerce(name, known[name].type, value) for name, value in values.items()}
        config = cls(**coerced)
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        """Flat dict of every field (the form logged as MLflow params and passed to workers)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A validated copy with some fields changed."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    def validate(self) -> None:
        """Range-check every value; raise ConfigError naming the key and the allowed range."""
        from trainables.encoders import ENCODERS  # heavy: torch; a config is built and checked without it

        _choice("framework", self.framework, FRAMEWORKS)
        _choice("precision", self.precision, PRECISIONS)
        _choice("eval_mode", self.eval_mode, EVAL_MODES)
        _choice("mel_window", self.mel_window, MEL_WINDOWS)
        _choice("encoder", self.encoder, tuple(ENCODERS))
        _range("margin", self.margin, 0.0, 1.0, hi_open=True)
        _range("temperature", self.temperature, 1e-4, 10.0)
        _range("momentum", self.momentum, 0.0, 1.0, hi_open=True)
        _range("lr", self.lr, 1e-8, 1.0, lo_open=True)
        _range("weight_decay", self.weight_decay, 0.0, 1.0)
        _range("lr_decay", self.lr_decay, 0.0, 1.0, lo_open=True)
        _range("noise_prob", self.noise_prob, 0.0, 1.0)
        _range("reverb_prob", self.reverb_prob, 0.0, 1.0)
        _range("max_bad_files", self.max_bad_files, 0.0, 1.0)
        _range("crop_seconds", self.crop_seconds, 0.1, 60.0)
        _range("eval_segment_seconds", self.eval_segment_seconds, 0.1, 600.0)
        _range("preload_max_gb", self.preload_max_gb, 0.0, 4096.0)
        _range("batch_size", self.batch_size, 2, 1_000_000)
        _range("epochs", self.epochs, 1, 100_000)
        _range("lr_decay_epochs", self.lr_decay_epochs, 1, 100_000)
        _range("queue_size", self.queue_size, 1, 10_000_000)
        _range("embedding_dim", self.embedding_dim, 2, 65536)
        _range("projector_dim", self.projector_dim, 2, 65536)
        _range("projector_hidden_dim", self.projector_hidden_dim, 2, 65536)
        _range("n_mels", self.n_mels, 8, 256)
        _range("sample_rate", self.sample_rate, 8000, 48000)
        _range("seed", self.seed, 0, 2**31 - 1)
        _range("eval_every", self.eval_every, 0, 100_000)
        _range("eval_segments", self.eval_segments, 1, 100)
        _range("max_utterances_per_speaker", self.max_utterances_per_speaker, 0, 10_000_000)
        _range("max_utterances", self.max_utterances, 0, 100_000_000)
        _range("loader_workers", self.loader_workers, -1, 256)
        if self.framework == "moco" and self.queue_size < self.batch_size:
            raise ConfigError(
                f"queue_size={self.queue_size} is smaller than batch_size={self.batch_size}: "
                "the MoCo queue must hold at least one batch of keys"
            )

    @property
    def crop_samples(self) -> int:
        """Samples per training view."""
        return int(round(self.crop_seconds * self.sample_rate))

    @property
    def eval_segment_samples(self) -> int:
        """Samples per evaluation segment."""
        return int(round(self.eval_segment_seconds * self.sample_rate))


PROFILES: dict[str, dict[str, Any]] = {
    "paper": {},
    "cpu": {
        "batch_size": 64,
        "epochs": 65,
        "lr": 2e-3,
        "lr_decay_epochs": 2,
        "precision": "bf16",
        "channels_last": True,
        "queue_size": 1024,
        "momentum": 0.99,
        "noise_prob": 0.0,
        "reverb_prob": 0.5,
        "eval_every": 10,
        "eval_mode": "full",
    },
}
"""Named overrides of the paper defaults.

'cpu': sized for a 2-core machine and small corpora (15-20 minutes for 850 utterances on 2 cores). bf16
autocast with channels_last runs the Fast ResNet-34 step about 2x faster than fp32 on CPUs with bf16 units.
Augmentation is reverberation of half the views and no additive noise: with a small noise set (a few clips, white
and pink noise among them, SNR 0-15 dB) noise costs EER on speechocean762. GPU sweep, 65 epochs, trials_dev:
15.8 % with noise and reverberation on every view, 10.4 % with noise 0.1 and reverberation 0.5, 8.1 % with
reverberation 0.5 only. Evaluation embeds whole utterances ('full'). The paper profile keeps the paper's recipe.
"""


def build_config(profile: str = "paper", overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """The profile's config with `overrides` applied and validated."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; known profiles: {sorted(PROFILES)}")
    return TrainConfig.from_dict({**PROFILES[profile], **(overrides or {})})


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one `key=value` command-line override; the value is typed by the field's type."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    known = {f.name: f for f in fields(TrainConfig)}
    if key not in known:
        raise ConfigError(f"unknown config key {key!r} in override {text!r}; known keys: {sorted(known)}")
    return key, _coerce(key, known[key].type, raw.strip(), from_text=True)


def _coerce(name: str, type_name: Any, value: Any, from_text: bool = False) -> Any:
    type_name = type_name if isinstance(type_name, str) else type_name.__name__
    if type_name == "bool":
        if isinstance(value, bool):
            return value
        if from_text or isinstance(value, str):
            lowered = str(value).lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
        raise ConfigError(f"{name} must be a bool (true/false), got {value!r}")
    if type_name == "int":
        if isinstance(value, bool):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if type_name == "float":
        if isinstance(value, bool):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        if isinstance(value, (int, float)):
            result = float(value)
        elif isinstance(value, str):
            try:
                result = float(value)
            except ValueError:
                raise ConfigError(f"{name} must be a number, got {value!r}") from None
        else:
            raise ConfigError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(result):
            raise ConfigError(f"{name} must be finite, got {value!r}")
        return result
    if type_name == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{name}: unsupported field type {type_name}")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not one of {list(allowed)}")


def _range(name: str, value: float, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> None:
    below = value <= lo if lo_open else value < lo
    above = value >= hi if hi_open else value > hi
    if below or above:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ConfigError(f"{name}={value!r} is out of range; allowed: {interval}")
