"""Fixtures shared by the test packages."""

import pytest

from trainables.corpus import generate_corpus


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """A small embedded-style corpus (8 training speakers, 4 test speakers, 1.5-2.5 s utterances)."""
    root = tmp_path_factory.mktemp("tiny_corpus")
    generate_corpus(
        root, n_train_speakers=8, n_train_utterances=4, n_test_speakers=4, n_test_utterances=3,
        min_seconds=1.5, max_seconds=2.5, n_noise_files=1, noise_seconds=2.0, n_rirs=2,
    )
    return root
