"""hw2-q2.py as a user runs it: a run writes its record and figures, a sweep picks the learning rate of the
best validation accuracy, a trial run of other settings leaves the committed result alone and -reuse keeps
only a finished run of the same config, and a diverging run exits 3. (Bad input: test_bad_input.py.)"""
import json

from conftest import intel_npz, run_script


def run_q2(*args, cwd=None):
    return run_script("hw2-q2.py", *args, "-quiet", cwd=cwd)


def test_a_run_writes_its_record_and_figures(tmp_path):
    code, out, err = run_q2("-epochs", "2", "-data_path", intel_npz(tmp_path / "tiny.npz"), "-out_dir", tmp_path)
    assert code == 0, err
    assert out.splitlines()[-1].endswith(f"figures {tmp_path}/cnn-bn-lr0.01-losses.pdf, {tmp_path}/cnn-bn-lr0.01-val_acc.pdf, "
                                         f"{tmp_path}/cnn-bn-lr0.01-confusion.pdf, {tmp_path}/cnn-bn-lr0.01-activations.pdf")
    result = json.loads((tmp_path / "cnn-bn-lr0.01.json").read_text())
    assert result["status"] == "completed" and result["n_params"] == 755_718
    assert [len(result["history"][k]) for k in ("epoch", "val_acc", "val_loss", "val_acc_reestimated_bn")] == [2] * 4
    assert result["final_test_acc_ci"][0] <= result["final_test_acc"] <= result["final_test_acc_ci"][1]
    assert sum(map(sum, result["confusion_matrix"])) == 12
    for fig in ("losses", "val_acc", "confusion", "activations"):
        assert (tmp_path / f"cnn-bn-lr0.01-{fig}.pdf").exists()


def test_a_sweep_picks_the_learning_rate_of_the_best_validation_accuracy(tmp_path):
    path = intel_npz(tmp_path / "tiny.npz")
    assert run_q2("-epochs", "1", "-data_path", path, "-out_dir", tmp_path, "-sweep", "0.01", "0.001")[0] == 0
    summary = json.loads((tmp_path / "sweep-bn.json").read_text())
    accs = {lr: json.loads((tmp_path / f"cnn-bn-lr{lr:g}.json").read_text())["best_val_acc"] for lr in (0.01, 0.001)}
    assert summary["best_learning_rate"] == max(accs, key=accs.get)
    assert (tmp_path / "sweep-bn-train_loss.pdf").exists() and (tmp_path / "sweep-bn-val_acc.png").exists()


def test_a_trial_run_goes_to_runs_and_reuse_keeps_only_a_finished_equal_config(tmp_path):
    intel_npz(tmp_path / "tiny.npz")
    common = ["-data_path", "./tiny.npz", "-out_dir", "results/q2/", "-no_batch_norm"]  # ./x is x, x/ is x
    assert run_q2("-epochs", "1", *common, cwd=tmp_path)[0] == 0
    committed = tmp_path / "results/q2/cnn-vanilla-lr0.01.json"
    first = committed.read_bytes()
    code, out, _ = run_q2("-epochs", "2", *common, cwd=tmp_path)  # other settings: a trial run
    assert code == 0 and "a trial run: results/q2/cnn-vanilla-lr0.01.json records a run of other settings (epochs 1 " \
                         "-> 2), so this one goes to runs/q2/cnn-vanilla-lr0.01.json" in out
    assert committed.read_bytes() == first
    assert json.loads((tmp_path / "runs/q2/cnn-vanilla-lr0.01.json").read_text())["history"]["epoch"] == [1, 2]
    for extra in (["-sweep", "0.01"], []):  # one meaning of -reuse, in a sweep and in a single run
        code, out, _ = run_q2("-epochs", "1", "-reuse", *extra, *common[2:], "-data_path", "tiny.npz", cwd=tmp_path)
        assert code == 0 and "a finished run of this very config; reused (-reuse)" in out and "epoch  1/1" not in out
    assert committed.read_bytes() == first


def test_a_diverging_run_writes_its_record_and_exits_3(tmp_path):
    code, out, _ = run_q2("-epochs", "3", "-data_path", intel_npz(tmp_path / "tiny.npz"), "-out_dir", tmp_path,
                          "-no_batch_norm", "-learning_rate", "1e12")
    result = json.loads((tmp_path / "cnn-vanilla-lr1e+12.json").read_text())
    assert code == 3 and "epoch 1: training loss is nan" in out
    assert result["status"] == "diverged" and result["history"]["epoch"] == []
