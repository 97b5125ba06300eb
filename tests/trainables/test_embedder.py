"""The encoder as one module: a checkpoint's state in, unit-norm embeddings of waveforms and audio files out."""

import numpy as np
import soundfile as sf
import torch

from trainables.checkpoint import write_checkpoint
from trainables.config import build_config
from trainables.embedder import embed_files, load_embedder
from trainables.evaluation import embed_utterances
from trainables.parts import build_framework


def test_a_checkpoint_s_encoder_embeds_waveforms_and_files_as_evaluation_does(tmp_path):
    cfg = build_config("cpu", {"seed": 3, "embedding_dim": 64})
    framework = build_framework(cfg)
    with torch.no_grad():
        for p in framework.parameters():
            p.add_(torch.randn_like(p) * 0.01)  # not the seed's initial weights: the state must be loaded
    write_checkpoint(tmp_path / "epoch_0001", {"epoch": 1, "model": framework.state_dict(), "config": cfg.to_dict()})
    embedder, loaded_cfg = load_embedder(tmp_path / "epoch_0001")
    assert loaded_cfg == cfg and not embedder.training
    rng = np.random.default_rng(0)
    waves = [np.round(rng.normal(0, 3000, n)).astype(np.int16) for n in (16000, 24000)]
    batch = torch.from_numpy(np.stack([w[:16000] for w in waves]).astype(np.float32) / 32768)  # (2, 16000)
    vectors = embedder(batch)  # (2, 64)
    assert vectors.shape == (2, 64) and torch.allclose(vectors.norm(dim=1), torch.ones(2), atol=1e-5)
    framework.eval()
    expected = embed_utterances([w[:16000] for w in waves], embedder.frontend, framework.encoder, torch.device("cpu"),
                                "full")
    assert torch.allclose(vectors, expected, atol=1e-5), "the checkpoint's weights, evaluation's numerics"
    paths = []
    for i, wave in enumerate(waves):
        paths.append(tmp_path / f"u{i}.wav")
        sf.write(paths[-1], wave, 16000, subtype="PCM_16")
    from_files = embed_files(embedder, paths)
    direct = embed_utterances(waves, embedder.frontend, framework.encoder, torch.device("cpu"), "full", quantum=8000)
    assert from_files.shape == (2, 64) and np.allclose(from_files, direct.numpy(), atol=1e-5)
