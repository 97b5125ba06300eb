"""TrainConfig: paper defaults, validation messages, overrides."""

import pytest

from trainables.config import PROFILES, ConfigError, TrainConfig, build_config, parse_override


def lr_at_epoch(lr: float, lr_decay: float, lr_decay_epochs: int, epoch: int) -> float:
    """Step-decayed learning rate in force during 0-based `epoch`."""
    return lr * lr_decay ** (epoch // lr_decay_epochs)


def test_defaults_are_the_paper_setup():
    cfg = TrainConfig.from_dict({})
    assert (cfg.framework, cfg.symmetric, cfg.margin) == ("simclr", True, 0.1)
    assert cfg.temperature == pytest.approx(1 / 30)
    assert (cfg.batch_size, cfg.epochs, cfg.lr, cfg.lr_decay, cfg.lr_decay_epochs) == (200, 150, 1e-3, 0.95, 5)
    assert (cfg.n_mels, cfg.embedding_dim, cfg.crop_samples, cfg.seed) == (40, 512, 32000, 1717)
    assert (cfg.eval_segments, cfg.eval_segment_samples, cfg.projector) == (10, 56240, False)
    assert lr_at_epoch(cfg.lr, cfg.lr_decay, cfg.lr_decay_epochs, 149) == pytest.approx(1e-3 * 0.95**29)


def test_every_profile_is_valid():
    for name in PROFILES:
        assert isinstance(build_config(name), TrainConfig)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"marginn": 0.1}, "unknown config key"),
        ({"margin": 1.0}, r"margin=1.0 is out of range; allowed: \[0.0, 1.0\)"),
        ({"margin": -0.1}, "margin"),
        ({"temperature": 0.0}, "temperature"),
        ({"framework": "byol"}, "framework='byol' is not one of"),
        ({"batch_size": "big"}, "batch_size must be an integer"),
        ({"symmetric": "maybe"}, "symmetric must be a bool"),
        ({"lr": float("nan")}, "lr must be finite"),
        ({"epochs": 0}, "epochs"),
        ({"framework": "moco", "queue_size": 100, "batch_size": 200}, "queue_size=100 is smaller than batch_size=200"),
        ({"encoder": "nope"}, "encoder='nope'"),
    ],
)
def test_bad_values_name_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict(values)


def test_frozen_and_replace_validates():
    cfg = TrainConfig.from_dict({})
    with pytest.raises(Exception):
        cfg.margin = 0.3  # type: ignore[misc]
    assert cfg.replace(margin=0.3).margin == 0.3
    with pytest.raises(ConfigError):
        cfg.replace(margin=2.0)


def test_round_trip_and_text_overrides():
    cfg = build_config("cpu", dict(parse_override(t) for t in ["margin=0.2", "symmetric=false", "batch_size=32"]))
    assert (cfg.margin, cfg.symmetric, cfg.batch_size) == (0.2, False, 32)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown config key 'nope'"):
        parse_override("nope=1")
    with pytest.raises(ConfigError, match="not of the form"):
        parse_override("margin")
