"""`python -m study.bench` times the training loop's own step and loader, not copies of them."""

import json

import study.bench as bench
import trainables.loop as loop
import trainables.parts as parts


def counting(monkeypatch, module, name):
    """Wrap (not replace) `module.name`; returns the list of (arguments, result) of its calls."""
    real, calls = getattr(module, name), []

    def wrapper(*args, **kwargs):
        result = real(*args, **kwargs)
        calls.append((args, result))
        return result

    monkeypatch.setattr(module, name, wrapper)
    return calls


def test_the_step_benchmark_times_the_loops_train_step(monkeypatch, tmp_path, capsys):
    assert bench.train_step is loop.train_step and bench.build_step is parts.build_step
    steps = counting(monkeypatch, bench, "train_step")
    built = counting(monkeypatch, bench, "build_step")
    absent = str(tmp_path / "absent")
    code = bench.main(["--only", "step", "--repeats", "1", "--batch", "2", "--data-root", absent, "--noise", absent,
                       "--rir", absent])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["step_s_fp32"] > 0 and result["step_s_bf16_channels_last"] > 0
    assert [args[0].precision for args, _ in built] == ["fp32", "bf16"]  # no augmentation folders: two settings
    assert len(steps) == 2 * (2 + 1)  # two warm-up steps and one timed step per setting
    for (step_parts, views, _), _ in steps:
        assert any(step_parts is made for _, made in built)
        assert tuple(views.shape) == (2, 2, step_parts.cfg.crop_samples)  # a loader batch (n, 2, crop)


def test_the_loader_benchmark_reads_through_the_runs_loader(monkeypatch, tiny_corpus):
    assert bench.build_data is parts.build_data
    built = counting(monkeypatch, bench, "build_data")
    result = bench.bench_loader(tiny_corpus, "train.csv", tiny_corpus / "noise", tiny_corpus / "rir", batches=2, batch=8)
    assert len(built) == 1 and built[0][0][0].batch_size == 8
    assert result["loader_utt_per_s_no_aug"] > 0 and result["loader_utt_per_s_aug"] > 0


def test_bad_options_and_data_are_one_error_line_with_exit_2(tiny_corpus, tmp_path, capsys):
    """A device that is not one, and a malformed training list, are refused without a traceback."""
    assert bench.main(["--only", "metrics", "--device", "tpu"]) == 2
    assert capsys.readouterr().err == "error: --device 'tpu' is not auto, cpu, cuda or cuda:N\n"
    (tmp_path / "train.csv").write_text("File,Speaker\na.wav,s,extra\n")
    args = ["--only", "loader", "--data-root", str(tiny_corpus), "--train", str(tmp_path / "train.csv"), "--batch", "8"]
    assert bench.main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(f"error: {tmp_path / 'train.csv'}:2: expected 2 column(s)")
    assert captured.err.count("\n") == 1
