import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

import cnn as q2
import cli
import intel
from conftest import course_file, run_script


def test_parameter_counts_match_the_assignment_networks():
    assert q2.get_number_trainable_params(q2.CNN(0.1, batch_norm=False)) == 5_340_742
    assert q2.get_number_trainable_params(q2.CNN(0.1, batch_norm=True)) == 755_718


@pytest.mark.parametrize("batch_norm", [False, True])
def test_output_is_log_probabilities(batch_norm, device):
    model = q2.CNN(0.1, batch_norm=batch_norm).eval().to(device)
    out = model(torch.rand(5, 3, 48, 48, device=device))
    assert out.shape == (5, 6)
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(5, device=device))


def test_switches_change_the_structure():
    vanilla = q2.CNN(0.1, batch_norm=False)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in vanilla.modules())
    assert isinstance(vanilla.pool, nn.Identity) and vanilla.fc1.in_features == 128 * 6 * 6
    bn = q2.CNN(0.1, batch_norm=True)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in bn.modules()) == 3
    assert isinstance(bn.bn1, nn.BatchNorm1d) and isinstance(bn.pool, nn.AdaptiveAvgPool2d)
    assert bn.fc1.in_features == 128
    no_pool = q2.CNN(0.1, maxpool=False, batch_norm=False, image_size=16)
    assert not any(isinstance(m, nn.MaxPool2d) for m in no_pool.modules())
    assert no_pool.fc1.in_features == 128 * 16 * 16
    assert no_pool(torch.rand(2, 3, 16, 16)).shape == (2, 6)
    block = q2.ConvBlock(3, 8, 3, maxpool=True, batch_norm=False, dropout=0.1)
    assert block(torch.rand(1, 3, 10, 10)).shape == (1, 8, 5, 5)
    assert block.conv.padding == (1, 1) and block.conv.stride == (1, 1)


# ---- the loader --------------------------------------------------------------------------------

def synthetic_arrays(n=(24, 12, 12), seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for key, size in zip(("train", "val", "test"), n):
        arrays[f"{key}_images"] = rng.integers(0, 256, (size, 48, 48, 3), dtype=np.uint8)
        arrays[f"{key}_labels"] = (np.arange(size) % 6).reshape(-1, 1).astype(np.int64)
    return arrays


def write_npz(path, arrays):
    np.savez(path, **arrays)
    return str(path)


def test_three_layouts_give_identical_tensors(tmp_path):
    nhwc = synthetic_arrays()
    nchw = {k: v.transpose(0, 3, 1, 2) if k.endswith("images") else v for k, v in nhwc.items()}
    flat = {k: v.reshape(len(v), -1) if k.endswith("images") else v for k, v in nchw.items()}
    loaded = [intel.load(write_npz(tmp_path / f"{name}.npz", a), verbose=False)
              for name, a in (("nhwc", nhwc), ("nchw", nchw), ("flat", flat))]
    for split in ("train", "dev", "test"):
        X, y = loaded[0][split]
        assert X.shape[1:] == (3, 48, 48) and X.dtype == torch.float32 and 0 <= X.min() and X.max() <= 1
        assert y.dtype == torch.long and y.dim() == 1
        for other in loaded[1:]:
            torch.testing.assert_close(other[split][0], X)
            assert torch.equal(other[split][1], y)


def one_line_error(capsys, fn):
    """The InputError message fn raises: the one line the scripts print."""
    with pytest.raises(cli.InputError) as e:
        fn()
    assert len(str(e.value).splitlines()) == 1
    return str(e.value)


def test_loader_errors_name_the_file_key_and_shape(tmp_path, capsys):
    err = one_line_error(capsys, lambda: intel.load(str(tmp_path / "absent.npz")))
    assert "absent.npz" in err and "data/intel_landscapes.v2.npz" in err
    arrays = synthetic_arrays()
    del arrays["val_labels"]
    err = one_line_error(capsys, lambda: intel.load(write_npz(tmp_path / "nokey.npz", arrays)))
    assert "nokey.npz" in err and "'val_labels'" in err
    arrays = synthetic_arrays()
    arrays["test_images"] = arrays["test_images"][:, :32]
    err = one_line_error(capsys, lambda: intel.load(write_npz(tmp_path / "shape.npz", arrays)))
    assert "shape.npz" in err and "'test_images'" in err and "(12, 32, 48, 3)" in err and "(N,48,48,3)" in err


# ---- end to end --------------------------------------------------------------------------------

def test_tiny_run_writes_json_and_figures(tmp_path):
    path = write_npz(tmp_path / "tiny.npz", synthetic_arrays())
    assert run_q2("-epochs", "2", "-batch_size", "8", "-data_path", path, "-out_dir", tmp_path, "-quiet",
                  "-no_batch_norm")[0] == 0
    result = json.loads((tmp_path / "cnn-vanilla-lr0.01.json").read_text())
    assert result["status"] == "completed" and result["config"]["batch_norm"] is False
    assert result["history"]["epoch"] == [1, 2] and len(result["history"]["val_acc"]) == 2
    assert result["n_params"] == 5_340_742 and 0 <= result["best_val_test_acc"] <= 1
    assert result["final_test_acc_ci"][0] <= result["final_test_acc"] <= result["final_test_acc_ci"][1]
    for fig in ("losses", "val_acc", "confusion", "activations"):
        assert (tmp_path / f"cnn-vanilla-lr0.01-{fig}.pdf").exists()


def test_sweep_picks_the_best_learning_rate_and_draws_figures(tmp_path):
    path = write_npz(tmp_path / "tiny.npz", synthetic_arrays())
    assert run_q2("-epochs", "1", "-data_path", path, "-out_dir", tmp_path, "-quiet", "-sweep", "0.01", "0.001")[0] == 0
    summary = json.loads((tmp_path / "sweep-bn.json").read_text())
    best = max(summary["table"], key=lambda r: r["best_val_acc"])
    assert summary["best_learning_rate"] == best["learning_rate"]
    assert (tmp_path / "sweep-bn-train_loss.pdf").exists() and (tmp_path / "sweep-bn-val_acc.png").exists()


def test_nan_loss_stops_the_run_writes_its_json_and_exits_non_zero(tmp_path):
    path = write_npz(tmp_path / "tiny.npz", synthetic_arrays())
    code, out, _ = run_q2("-epochs", "3", "-data_path", path, "-out_dir", tmp_path, "-quiet", "-no_batch_norm",
                          "-learning_rate", "1e12")
    result = json.loads((tmp_path / "cnn-vanilla-lr1e+12.json").read_text())
    assert result["status"] == "diverged" and result["history"]["epoch"] == []
    assert code == 3 and "epoch 1: training loss is nan" in out


def test_course_data_loads_with_the_documented_sizes():
    data = intel.load(course_file("intel_landscapes.v2.npz"), verbose=False)
    assert [len(data[s][1]) for s in ("train", "dev", "test")] == [12_630, 1_404, 3_000]
    assert data["train"][0].shape[1:] == (3, 48, 48)


def test_channels_last_run_matches_the_default_closely(tmp_path):
    """Without dropout (whose masks follow the memory layout) the two layouts train the same up to rounding."""
    path = write_npz(tmp_path / "tiny.npz", synthetic_arrays())
    losses = {}
    for flag in ([], ["-channels_last"]):
        out = tmp_path / ("cl" if flag else "default")
        assert run_q2("-epochs", "1", "-data_path", path, "-out_dir", out, "-quiet", "-dropout", "0", *flag)[0] == 0
        result = json.loads((out / "cnn-bn-lr0.01.json").read_text())
        assert result["config"]["channels_last"] is bool(flag)
        losses[bool(flag)] = result["history"]["train_loss"][0]
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)


def test_a_run_of_other_settings_goes_to_runs_and_reuse_keeps_only_a_finished_equal_config(tmp_path):
    path = write_npz(tmp_path / "tiny.npz", synthetic_arrays())
    common = ["-data_path", path, "-out_dir", "results/q2", "-quiet", "-no_batch_norm"]
    run_q2("-epochs", "1", *common, cwd=tmp_path)
    first = (tmp_path / "results/q2/cnn-vanilla-lr0.01.json").read_bytes()
    run_q2("-epochs", "2", *common, cwd=tmp_path)  # a trial run of other settings: the result stays
    assert (tmp_path / "results/q2/cnn-vanilla-lr0.01.json").read_bytes() == first
    assert json.loads((tmp_path / "runs/q2/cnn-vanilla-lr0.01.json").read_text())["history"]["epoch"] == [1, 2]
    for extra in (["-sweep", "0.01"], []):  # one meaning of -reuse, in a sweep and in a single run
        code, out, _ = run_q2("-epochs", "1", "-reuse", *extra, *common, cwd=tmp_path)
        assert code == 0 and "a finished run of this very config; reused (-reuse)" in out
        assert "epoch  1/1" not in out
    assert (tmp_path / "results/q2/cnn-vanilla-lr0.01.json").read_bytes() == first


def test_unknown_device_is_a_one_line_error(capsys):
    err = one_line_error(capsys, lambda: cli.get_device("gpu"))
    assert "'gpu'" in err


def record_calls(modules):
    """Forward hooks that append each module's name when it runs."""
    order = []
    for name, m in modules.items():
        m.register_forward_hook(lambda mod, inp, out, name=name: order.append(name))
    return order


def test_conv_block_runs_conv_batchnorm_relu_maxpool_dropout_in_that_order():
    block = q2.ConvBlock(3, 8, 3, maxpool=True, batch_norm=True, dropout=0.1)
    order = record_calls({n: getattr(block, n) for n in ("conv", "bn", "relu", "pool", "dropout")})
    block(torch.rand(2, 3, 8, 8))
    assert order == ["conv", "bn", "relu", "pool", "dropout"]
    assert isinstance(block.bn, nn.BatchNorm2d) and isinstance(block.pool, nn.MaxPool2d)


def test_mlp_batchnorm_comes_after_relu_and_before_dropout():
    model = q2.CNN(0.1, batch_norm=True).train()
    seen = {}
    model.bn1.register_forward_hook(lambda m, inp, out: seen.update(bn_in=inp[0]))
    order = record_calls({"fc1": model.fc1, "bn1": model.bn1, "dropout": model.dropout, "fc2": model.fc2})
    model(torch.rand(4, 3, 48, 48))
    assert order == ["fc1", "bn1", "dropout", "fc2"]
    assert (seen["bn_in"] >= 0).all() and (seen["bn_in"] == 0).any(), "BatchNorm1d reads the ReLU output"


def test_skeleton_view_is_the_course_reshape_of_channel_last_images():
    nhwc = np.arange(2 * 48 * 48 * 3).reshape(2, 48, 48, 3)
    ours = torch.from_numpy(nhwc.transpose(0, 3, 1, 2).copy())
    skeleton = torch.from_numpy(nhwc.reshape(2, -1)).reshape(2, 3, 48, -1)  # the skeleton's load + forward
    assert torch.equal(intel.skeleton_view(ours), skeleton)
    assert not torch.equal(intel.skeleton_view(ours), ours)


def test_npz_with_object_arrays_is_a_one_line_error(tmp_path, capsys):
    arrays = synthetic_arrays()
    arrays["train_images"] = np.array([None] * 24, dtype=object)
    path = tmp_path / "pickled.npz"
    np.savez(path, **arrays)
    err = one_line_error(capsys, lambda: intel.load(str(path)))
    assert "pickled.npz" in err and "'train_images'" in err


def test_reestimated_bn_accuracy_leaves_model_and_random_stream_alone():
    torch.manual_seed(0)
    model = q2.CNN(0.1, batch_norm=True)
    X, y = torch.rand(40, 3, 48, 48), torch.arange(40) % 6
    model.train()
    model(X[:8])  # running statistics from one small batch
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.get_rng_state()
    acc = q2.reestimated_bn_accuracy(model, X, X, y, batch_size=10)
    assert 0 <= acc <= 1 and torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bn_run_records_validation_loss_and_reestimated_accuracy(tmp_path):
    path = write_npz(tmp_path / "tiny.npz", synthetic_arrays())
    assert run_q2("-epochs", "2", "-data_path", path, "-out_dir", tmp_path, "-quiet")[0] == 0
    history = json.loads((tmp_path / "cnn-bn-lr0.01.json").read_text())["history"]
    assert len(history["val_loss"]) == 2 and len(history["val_acc_reestimated_bn"]) == 2
    assert all(v > 0 for v in history["val_loss"])


def test_confusion_counts_true_rows_and_predicted_columns():
    cm = q2.confusion(torch.tensor([0, 0, 1, 5]), torch.tensor([0, 2, 1, 0]))
    assert cm[0] == [1, 0, 1, 0, 0, 0] and cm[1][1] == 1 and cm[5][0] == 1 and sum(map(sum, cm)) == 4


def run_q2(*args, cwd=None):
    return run_script("hw2-q2.py", *args, cwd=cwd)


def test_a_last_batch_of_one_image_is_left_out_with_batch_norm(device):
    torch.manual_seed(0)
    model = q2.CNN(0.1, batch_norm=True).to(device)
    X, y = torch.rand(9, 3, 48, 48, device=device), torch.arange(9, device=device) % 6
    loss = q2.train_epoch(model, X, y, torch.optim.SGD(model.parameters(), lr=0.01), 8, torch.Generator().manual_seed(0),
                          progress=False)
    assert math.isfinite(loss)  # BatchNorm1d would fail on the last batch of one; it is left out
