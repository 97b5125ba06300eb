"""Seconds per trial: the whole machinery (search, Ray Train, MLflow) on a tiny slice; used by the tests."""

from search_spaces import Choice, Float, Param, Study

STUDY = Study(
    name="smoke",
    description="Tiny trials (seconds each) exercising search, Ray Train and MLflow end to end",
    fixed={
        "epochs": 2,
        "batch_size": 16,
        "max_utterances": 64,
        "crop_seconds": 0.5,
        "eval_every": 1,
        "eval_mode": "segments",
        "eval_segments": 1,
        "eval_segment_seconds": 1.0,
        "lr_decay_epochs": 1,
        "queue_size": 64,
    },
    search=(
        Param("framework", Choice(("simclr", "moco"))),
        Param("margin", Float(0.0, 0.3)),
        Param("queue_size", Choice((32, 64)), when={"framework": "moco"}),
    ),
    num_samples=2,
    points_to_evaluate=({"framework": "simclr", "margin": 0.1}, {"framework": "moco", "margin": 0.2}),
    searcher_seed=7,
)
