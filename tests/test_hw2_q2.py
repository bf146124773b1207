"""hw2-q2.py: the assignment's two networks (parameter counts, layer order, dropout in training only, the
MLP's ReLUs, switches), train_batch's one step on its own batch, predict and evaluate in eval mode, only
trainable parameters counted, the training loop (a last batch of one left out with batch norm, divergence,
the best epoch's weights kept), the batch-norm re-estimate, the confusion matrix, and a run as a user runs
it.

Mistakes tried (python tests/mutants.py), each caught by the test named:
- hw2-q2.py: `self.dropout(self.pool(self.relu(self.bn(self.conv(x)))))` -> `self.dropout(self.pool(self.bn(self.relu(self.conv(x)))))` | test_conv_block_runs_conv_batchnorm_relu_maxpool_dropout_in_that_order
- hw2-q2.py: `return self.dropout(self.pool(self.relu(` -> `return (self.pool(self.relu(` | test_dropout_follows_each_block_and_the_first_relu_in_training_only
- hw2-q2.py: `batch_norm=batch_norm, dropout=dropout_prob,` -> `batch_norm=batch_norm, dropout=0.0,` | test_dropout_follows_each_block_and_the_first_relu_in_training_only
- hw2-q2.py: `padding = kernel_size // 2 if padding is None else padding` -> `padding = 0 if padding is None else padding` | test_switches_change_the_structure
- hw2-q2.py: `nn.MaxPool2d(kernel_size=2, stride=2)` -> `nn.MaxPool2d(kernel_size=2, stride=1)` | test_switches_change_the_structure
- hw2-q2.py: `batch_norm=batch_norm, dropout=dropout_prob,` -> `batch_norm=False, dropout=dropout_prob,` | test_parameter_counts_match_the_assignment_networks
- hw2-q2.py: `self.bn1 = nn.BatchNorm1d(fc1_out_dim) if batch_norm else nn.Identity()` -> `self.bn1 = nn.Identity()` | test_parameter_counts_match_the_assignment_networks
- hw2-q2.py: `nn.AdaptiveAvgPool2d((1, 1)) if global_pool` -> `nn.AdaptiveMaxPool2d((1, 1)) if global_pool` | test_switches_change_the_structure
- hw2-q2.py: `x = self.dropout(self.bn1(F.relu(self.fc1(x))))` -> `x = self.bn1(self.dropout(F.relu(self.fc1(x))))` | test_mlp_batchnorm_comes_after_relu_and_before_dropout
- hw2-q2.py: `x = F.relu(self.fc2(x))` -> `x = self.fc2(x)` | test_dropout_follows_each_block_and_the_first_relu_in_training_only
- hw2-q2.py: `return F.log_softmax(x, dim=1)` -> `return x` | test_output_is_log_probabilities
- hw2-q2.py: `    optimizer.zero_grad()\n` -> `` | test_train_batch_takes_one_step_on_the_gradient_of_its_own_batch
- hw2-q2.py: `    optimizer.step()\n` -> `` | test_train_batch_takes_one_step_on_the_gradient_of_its_own_batch
- hw2-q2.py: `return loss.item()` -> `return loss` | test_train_batch_takes_one_step_on_the_gradient_of_its_own_batch
- hw2-q2.py: `    model.eval()  # ours: predictions` -> `    # ours: predictions` | test_predict_and_evaluate_read_the_model_in_eval_mode
- hw2-q2.py: `scores.argmax(dim=-1)` -> `scores.argmax(dim=0)` | test_predict_and_evaluate_read_the_model_in_eval_mode
- hw2-q2.py: `model(X[i:i + batch_size]) for i` -> `model(X[i:batch_size]) for i` | test_predict_and_evaluate_read_the_model_in_eval_mode
- hw2-q2.py: `n_correct = (y == y_hat).sum().item()` -> `n_correct = (y != y_hat).sum().item()` | test_predict_and_evaluate_read_the_model_in_eval_mode
- hw2-q2.py: `loss = criterion(scores, y) if criterion` -> `loss = criterion(scores, y_hat) if criterion` | test_predict_and_evaluate_read_the_model_in_eval_mode
- hw2-q2.py: `x.reshape(x.shape[0], self.image_size, self.image_size, 3).permute(0, 3, 1, 2)` -> `x.reshape(x.shape[0], 3, self.image_size, self.image_size)` | test_flat_course_vectors_are_read_channel_last
- hw2-q2.py: `for p in model.parameters() if p.requires_grad)` -> `for p in model.parameters())` | test_get_number_trainable_params_counts_trainable_parameters_only
- hw2-q2.py: `if len(idx) >= smallest:` -> `if True:` | test_a_last_batch_of_one_image_is_left_out_with_batch_norm
- hw2-q2.py: `or row["val_acc"] > best["val_acc"]:` -> `or True:` | test_the_model_ends_with_the_weights_of_its_best_validation_epoch
"""
import inspect
import json
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import call_main, ctrl_c_in_epoch, dropped, intel_npz, q2, run_script
from utils import CLASSES, IMAGE_SIDE


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
    bn_flat = q2.CNN(0.1, batch_norm=True, global_pool=False)  # Q2.2's two changes apart
    assert sum(isinstance(m, nn.BatchNorm2d) for m in bn_flat.modules()) == 3
    assert isinstance(bn_flat.pool, nn.Identity) and bn_flat.fc1.in_features == 128 * 6 * 6
    gap = q2.CNN(0.1, batch_norm=False, global_pool=True)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in gap.modules())
    assert isinstance(gap.pool, nn.AdaptiveAvgPool2d) and gap.fc1.in_features == 128
    assert q2.get_number_trainable_params(gap) == 755_718 - 2 * (32 + 64 + 128 + 1024)  # no BN affine
    args = q2.parse_args(["-no_batch_norm", "-global_pool", "on"])
    assert q2.run_name(args, 0.01) == "cnn-vanilla-lr0.01-gap"
    block = q2.ConvBlock(3, 8, 3, maxpool=True, batch_norm=False, dropout=0.1)
    assert block(torch.rand(1, 3, 10, 10)).shape == (1, 8, 5, 5)
    assert block.conv.padding == (1, 1) and block.conv.stride == (1, 1)


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


def test_dropout_follows_each_block_and_the_first_relu_in_training_only():
    """The vanilla network with dropout 0.5: each block's output is its pooled map dropped, the MLP's
    dropout drops the first ReLU's output, fc2 is followed by a ReLU; in eval mode nothing is dropped."""
    torch.manual_seed(0)
    model, seen = q2.CNN(0.5, batch_norm=False), {}
    record = lambda name: lambda m, i, o: seen.update({name + " in": i[0], name + " out": o})  # noqa: E731
    for name, m in [("fc1", model.fc1), ("fc2", model.fc2), ("fc3", model.fc3), ("dropout", model.dropout)]:
        m.register_forward_hook(record(name))
    for i, block in enumerate(model.blocks):
        block.register_forward_hook(record(f"block{i}"))
        block.pool.register_forward_hook(record(f"pool{i}"))
    for training in (True, False):
        model.train(training)
        model(torch.rand(4, 3, 48, 48))
        assert torch.equal(seen["dropout in"], F.relu(seen["fc1 out"]))
        assert torch.equal(seen["fc3 in"], F.relu(seen["fc2 out"]))
        for before, after in [(seen[f"pool{i} out"], seen[f"block{i} out"]) for i in range(3)] + [
                (seen["dropout in"], seen["dropout out"])]:
            assert dropped(before, after, 0.5) if training else torch.equal(before, after)


def test_train_batch_takes_one_step_on_the_gradient_of_its_own_batch():
    """After a first step, a second SGD step moves every weight by -lr times its own batch's gradient (none
    of the first left over), and returns that batch's loss as a float."""
    torch.manual_seed(0)
    model, criterion = q2.CNN(0.0, batch_norm=False), nn.NLLLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    X, y = torch.rand(4, 3, 48, 48), torch.tensor([0, 1, 2, 3])
    q2.train_batch(X[:2], y[:2], model, optimizer, criterion)
    before = [p.detach().clone() for p in model.parameters()]
    loss = criterion(model(X[2:]), y[2:])
    grads = torch.autograd.grad(loss, list(model.parameters()))
    got = q2.train_batch(X[2:], y[2:], model, optimizer, criterion)
    assert isinstance(got, float) and got == pytest.approx(loss.item())
    for p, b, g in zip(model.parameters(), before, grads):
        torch.testing.assert_close(p.detach(), b - 0.1 * g)


class FirstPixel(nn.Module):
    """Predicts the class written in each image's first pixel; in training mode its dropout scrambles that."""

    def __init__(self):
        super().__init__()
        self.dropout = nn.Dropout(0.9)

    def forward(self, X):
        return F.log_softmax(self.dropout(10.0 * F.one_hot(X[:, 0, 0, 0].long(), 6).float()), dim=-1)


def test_predict_and_evaluate_read_the_model_in_eval_mode():
    """The skeleton's contracts: predict gives (labels, scores) or labels; evaluate (accuracy, loss).
    Six of seven right; the loss is log(1 + 5 e^-10) for a right image and log(e^10 + 5) for the
    wrong one."""
    X = torch.zeros(7, 3, 2, 2)
    X[:, 0, 0, 0] = torch.tensor([0, 1, 2, 3, 4, 5, 0.0])
    model = FirstPixel().train()
    torch.manual_seed(0)
    labels, scores = q2.predict(model, X, batch_size=3)
    assert labels.tolist() == [0, 1, 2, 3, 4, 5, 0] and scores.shape == (7, 6)
    assert q2.predict(model, X, return_scores=False).tolist() == labels.tolist()
    acc, loss = q2.evaluate(model.train(), X, torch.tensor([0, 1, 2, 3, 4, 5, 1]), nn.NLLLoss())
    assert acc == 6 / 7 and loss.item() == pytest.approx(
        (6 * math.log(1 + 5 * math.exp(-10)) + math.log(math.exp(10) + 5)) / 7)
    assert q2.evaluate(model, X, torch.tensor([0, 1, 2, 3, 4, 5, 1]))[1] is None


def test_the_networks_defaults_are_the_data_s_classes_and_image_side():
    defaults = inspect.signature(q2.CNN).parameters
    assert (defaults["n_classes"].default, defaults["image_size"].default) == (len(CLASSES), IMAGE_SIDE)


def test_flat_course_vectors_are_read_channel_last():
    """What the course's load_dataset gives, (N, 48 * 48 * 3) with the colours last, is the same images
    as our (N, 3, 48, 48)."""
    images = torch.randint(0, 256, (2, 48, 48, 3)).float() / 256
    model = q2.CNN(0.1, batch_norm=True).eval()
    torch.testing.assert_close(model(images.reshape(2, -1)), model(images.permute(0, 3, 1, 2)))


def test_get_number_trainable_params_counts_trainable_parameters_only():
    model = q2.CNN(0.1, batch_norm=True)
    model.fc1.requires_grad_(False)  # 128 x 1024 weights and 1024 biases frozen
    assert q2.get_number_trainable_params(model) == 755_718 - 132_096


def test_confusion_counts_true_rows_and_predicted_columns():
    cm = q2.confusion(torch.tensor([0, 0, 1, 5]), torch.tensor([0, 2, 1, 0]))
    assert cm[0] == [1, 0, 1, 0, 0, 0] and cm[1][1] == 1 and cm[5][0] == 1 and sum(map(sum, cm)) == 4


def test_a_last_batch_of_one_image_is_left_out_with_batch_norm(device):
    torch.manual_seed(0)
    model = q2.CNN(0.1, batch_norm=True).to(device)
    X, y = torch.rand(9, 3, 48, 48, device=device), torch.arange(9, device=device) % 6
    loss = q2.train_epoch(model, X, y, torch.optim.SGD(model.parameters(), lr=0.01), 8, torch.Generator().manual_seed(0))
    assert math.isfinite(loss)  # BatchNorm1d would fail on the last batch of one; it is left out


def test_reestimated_bn_accuracy_leaves_model_and_random_stream_alone():
    torch.manual_seed(0)
    model = q2.CNN(0.1, batch_norm=True)
    X, y = torch.rand(40, 3, 48, 48), torch.arange(40) % 6
    model.train()
    model(X[:8])  # running statistics from one small batch
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.get_rng_state()
    q2.reestimated_bn_accuracy(model, X, X, y, batch_size=10)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def splits(n=(24, 12, 12), seed=0):
    g = torch.Generator().manual_seed(seed)
    return {s: (torch.rand(k, 3, 48, 48, generator=g), torch.arange(k) % 6) for s, k in zip(("train", "dev", "test"), n)}


def fit(model, data, lr=0.01, epochs=2, **kwargs):
    torch.manual_seed(0)
    return q2.fit(model, data, torch.optim.SGD(model.parameters(), lr=lr), epochs, 8, seed=0, **kwargs)


def test_the_model_ends_with_the_weights_of_its_best_validation_epoch():
    torch.manual_seed(0)
    model, data = q2.CNN(0.0, batch_norm=True), splits()
    out = fit(model, data, lr=0.05, epochs=4)
    assert out["status"] == "completed" and len(out["history"]["val_acc_reestimated_bn"]) == 4
    assert out["best_val_acc"] == max(out["history"]["val_acc"]) > out["history"]["val_acc"][-1]  # a worse last epoch
    assert out["best_epoch"] == out["history"]["val_acc"].index(out["best_val_acc"]) + 1
    assert round(q2.evaluate(model, *data["dev"])[0], 6) == out["best_val_acc"]  # recorded to 6 places


def test_a_non_finite_loss_stops_the_run_as_diverged():
    torch.manual_seed(0)
    out = fit(q2.CNN(0.1, batch_norm=False), splits(), lr=1e12, epochs=3)
    assert out["status"] == "diverged" and out["history"]["epoch"] == [] and out["final_test_acc"] is None


def test_a_run_writes_its_record_and_figures(tmp_path):
    npz = intel_npz(tmp_path / "intel.npz")
    code, out, err = run_script("hw2-q2.py", "-data_path", npz, "-epochs", "2", "-out_dir", tmp_path / "out")
    assert code == 0, err
    record = json.loads((tmp_path / "out" / "cnn-bn-lr0.01.json").read_text())
    assert record["status"] == "completed" and record["history"]["epoch"] == [1, 2]
    assert sum(map(sum, record["confusion_matrix"])) == 12 and record["n_params"] == 755_718
    assert all((tmp_path / "out" / f"cnn-bn-lr0.01-{f}.pdf").exists() for f in ("losses", "val_acc"))
    assert "fc1" in out and "755,718 trainable parameters" in out  # Q2.3, per layer


def test_ctrl_c_keeps_the_epochs_run_and_the_best_epoch_so_far(tmp_path, monkeypatch):
    """Ctrl-C in the second epoch: the record holds epoch 1 as "interrupted" and the run's .pt the
    best epoch so far with the history; the exit code is 130 and the last line says what is kept."""
    monkeypatch.setattr(q2, "train_epoch", ctrl_c_in_epoch(2, q2.train_epoch))
    npz = intel_npz(tmp_path / "intel.npz")
    code, out, err = call_main("hw2-q2.py", "-data_path", npz, "-epochs", "3", "-out_dir", "out", cwd=tmp_path)
    record = json.loads((tmp_path / "out" / "cnn-bn-lr0.01.json").read_text())
    kept = torch.load(tmp_path / "out" / "cnn-bn-lr0.01.pt", weights_only=True)
    assert code == 130 and record["status"] == "interrupted" and record["history"]["epoch"] == [1]
    assert kept["epoch"] == 1 and kept["history"] == record["history"] and record["final_test_acc"] is None
    assert err.strip().splitlines()[-1].startswith("interrupted after 1 epoch(s): out/cnn-bn-lr0.01.pt holds epoch 1")
