"""After a real smoke study (local Ray, SQLite MLflow store): each trial's encoder is an MLflow model that loads and
embeds like its checkpoint; its run has dataset inputs and system metrics; `study.evaluate` scores other trial
lists and logs them to the run; `study.embed` turns audio files into embeddings."""

from __future__ import annotations


import mlflow
import mlflow.pytorch
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from study.embed import main as embed_main
from study.evaluate import main as evaluate_main
from study.tracking.models import MODEL_NAME, MODEL_TAG, input_example
from trainables.corpus import TRIALS, default_cache_dir, corpus_dir_name
from trainables.embedder import embed_files, load_embedder
from trainables.metrics import eer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke(smoke_study):
    """The session's smoke study: (tracking URI, its two finished child runs, the embedded corpus's root)."""
    assert smoke_study.code == 0, smoke_study.output[-5000:]
    uri = smoke_study.uri
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["smoke"], filter_string="tags.trial_id != ''", output_format="list")
    return uri, runs, default_cache_dir() / corpus_dir_name()


def test_each_trial_logs_its_encoder_as_a_model_that_embeds_like_its_checkpoint_with_its_scores(smoke):
    uri, runs, _ = smoke
    wave = torch.from_numpy(input_example(16000))  # (1, 16000)
    for run in runs:
        model_uri = run.data.tags[MODEL_TAG]
        loaded = mlflow.pytorch.load_model(f"runs:/{run.info.run_id}/{MODEL_NAME}")
        embedder, _ = load_embedder(run.data.tags["checkpoint"])
        assert torch.allclose(loaded(wave), embedder(wave), atol=1e-5)
        longer = torch.randn(3, 24000) * 0.1  # any batch and length, as the signature says
        assert torch.allclose(loaded(longer).norm(dim=1), torch.ones(3), atol=1e-4)
        model = mlflow.models.get_model_info(model_uri)
        assert list(model.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, -1]
        assert model.saved_input_example_info is not None
        logged = MlflowClient(uri).get_logged_model(model_uri.removeprefix("models:/"))
        assert logged.params == run.data.params and logged.source_run_id == run.info.run_id
        scores = {m.key: (m.value, m.dataset_name) for m in logged.metrics}
        assert scores == {"eer": (run.data.metrics["eer"], TRIALS), "min_dcf": (run.data.metrics["min_dcf"], TRIALS)}
        assert len(MlflowClient(uri).get_metric_history(run.info.run_id, "eer")) == 2, "the run's history unchanged"


def test_each_trial_run_has_its_lists_as_dataset_inputs_and_system_metrics(smoke):
    uri, runs, root = smoke
    for run in runs:
        inputs = {i.dataset.name: i for i in MlflowClient(uri).get_run(run.info.run_id).inputs.dataset_inputs}
        assert set(inputs) == {"train.csv", TRIALS}
        contexts = {name: {t.key: t.value for t in i.tags}["mlflow.data.context"] for name, i in inputs.items()}
        assert contexts == {"train.csv": "training", TRIALS: "evaluation"}
        assert all(len(i.dataset.digest) == 16 for i in inputs.values())
        assert str(root / TRIALS) in inputs[TRIALS].dataset.source
        system = {key for key in run.data.metrics if key.startswith("system/")}
        assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= system


def test_evaluate_scores_other_lists_and_logs_them_to_the_trial_run(smoke, tmp_path, capsys):
    uri, runs, root = smoke
    run = runs[0]
    lines = (root / TRIALS).read_text().splitlines()
    second = tmp_path / "trials_b.txt"
    second.write_text("\n".join(lines[::2]) + "\n")
    code = evaluate_main([run.data.tags["trial_id"], "--study", "smoke", "--tracking-uri", uri,
                          "--trials", TRIALS, "--trials", str(second)])
    out = capsys.readouterr().out
    assert code == 0, out
    client = MlflowClient(uri)
    logged = client.get_run(run.info.run_id).data.metrics
    own = np.load(client.download_artifacts(run.info.run_id, "evaluations/trials.npz", str(tmp_path)))
    trained = np.load(client.download_artifacts(run.info.run_id, "scores.npz", str(tmp_path)))
    # Its own list scores as in training, to the numerics of bf16 under another thread count (Ray gives the
    # trial 1 thread): a two-epoch encoder's scores span ~1e-4, so near-ties may reorder and move the EER a little.
    assert np.array_equal(own["labels"], trained["labels"])
    assert np.abs(own["scores"] - trained["scores"]).max() < 1e-3
    assert np.corrcoef(own["scores"], trained["scores"])[0, 1] > 0.99
    assert logged["eer_trials"] == pytest.approx(eer(own["scores"], own["labels"]), abs=1e-9)
    assert logged["eer_trials"] == pytest.approx(run.data.metrics["eer"], abs=2.0)
    assert 0 <= logged["eer_trials_b"] <= 100 and "trials_b" in out and f"{len(lines[::2]):,}" in out
    stored = np.load(client.download_artifacts(run.info.run_id, "evaluations/trials_b.npz", str(tmp_path)))
    assert stored["scores"].shape == (len(lines[::2]),)
    assert logged["eer_trials_b"] == pytest.approx(eer(stored["scores"], stored["labels"]), abs=1e-9)

    best = min(runs, key=lambda r: r.data.metrics["eer"])
    assert evaluate_main(["best", "--study", "smoke", "--tracking-uri", uri, "--trials", TRIALS, "--no-log"]) == 0
    assert f"trial {best.data.tags['trial_id']}" in capsys.readouterr().out

    assert evaluate_main([run.data.tags["checkpoint"], "--trials", str(second), "--no-log"]) == 0
    assert f"{logged['eer_trials_b']:.2f}" in capsys.readouterr().out, "a checkpoint folder scores the same"

    assert evaluate_main(["best", "--study", "smoke", "--tracking-uri", uri, "--trials", TRIALS, "--no-log",
                          "--register", "smoke-encoder"]) == 0
    assert "registered smoke-encoder version 1" in capsys.readouterr().out
    registered = mlflow.pytorch.load_model("models:/smoke-encoder/1")
    wave = torch.from_numpy(input_example(16000))
    assert torch.allclose(registered(wave), load_embedder(best.data.tags["checkpoint"])[0](wave), atol=1e-5)


def test_evaluate_names_what_it_cannot_use(smoke, tmp_path, capsys):
    uri, runs, _ = smoke
    for args, message in (
        (["0" * 32], f"has no run {'0' * 32}"),
        ([runs[0].data.tags["checkpoint"], "--register", "x"], "--register needs a trial with an MLflow run"),
        (["nope", "--study", "smoke"], "study smoke has no trial nope"),
        (["nope"], "neither a folder nor an MLflow run id"),
        ([str(tmp_path)], "holds no checkpoint"),
    ):
        assert evaluate_main([*args, "--tracking-uri", uri, "--trials", TRIALS]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err, err


def test_embed_turns_files_into_the_model_s_embeddings(smoke, tmp_path, capsys):
    uri, runs, root = smoke
    run = runs[0]
    files = sorted(str(p) for p in (root / "test").rglob("*.flac"))[:3]
    out = tmp_path / "e.npz"
    assert embed_main([f"runs:/{run.info.run_id}/{MODEL_NAME}", *files, "--out", str(out), "--tracking-uri", uri]) == 0
    assert "3 embedding(s) of dimension" in capsys.readouterr().out
    saved = np.load(out)
    direct = embed_files(load_embedder(run.data.tags["checkpoint"])[0], files)
    assert list(saved["files"]) == files and np.allclose(saved["embeddings"], direct, atol=1e-5)
    assert np.allclose(np.linalg.norm(direct, axis=1), 1.0, atol=1e-4)
    assert embed_main([str(tmp_path), *files, "--out", str(out)]) == 2
    assert "is not a checkpoint folder" in capsys.readouterr().err
