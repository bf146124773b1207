"""utils.py is the course's: its hw2-q2.py calls, exactly as the course writes them, run on our file; our
loader's channels first.

Mistakes tried (python tests/mutants.py), each caught by the test named:
- utils.py: `train_X = data["train_images"].reshape([data["train_images"].shape[0], -1])/256` -> `train_X = data["train_images"].reshape([data["train_images"].shape[0], -1])/255` | test_the_course_hw2_q2_data_calls_run_on_our_utils
- utils.py: `train_X = np.hstack((train_X, np.ones((train_X.shape[0], 1))))` -> `train_X = np.hstack((train_X, np.zeros((train_X.shape[0], 1))))` | test_load_dataset_with_bias_appends_a_column_of_ones
- utils.py: `transpose(0, 3, 1, 2)` -> `transpose(0, 3, 2, 1)` | test_our_loader_puts_the_channels_first_and_divides_by_255
- utils.py: `    torch.manual_seed(seed)\n` -> `` | test_configure_seed_sets_python_numpy_and_torch
"""
import random

import numpy as np
import pytest
import torch

import utils
from conftest import intel_npz


def course_npz(path, n=4):
    """Random images but for image 1 of the training split, whose first two pixels are (10, 20, 30) and
    (40, 50, 60) and the rest 0."""
    image = np.zeros((48, 48, 3), dtype=np.uint8)
    image[0, :2] = [[10, 20, 30], [40, 50, 60]]
    images = np.random.default_rng(0).integers(0, 256, (n, 48, 48, 3), dtype=np.uint8)
    images[1] = image
    return dict(np.load(intel_npz(path, sizes=(n, n, n), train_images=images)))


def test_the_course_hw2_q2_data_calls_run_on_our_utils(tmp_path):
    arrays = course_npz(tmp_path / "intel.npz")
    utils.configure_seed(seed=42)
    data = utils.load_dataset(data_path=str(tmp_path / "intel.npz"))
    dataset = utils.ClassificationDataset(data)
    assert set(data) == {"train", "dev", "test"} and len(dataset) == 4
    assert dataset.X.dtype == torch.float32 and dataset.X.shape == (4, 48 * 48 * 3)
    assert dataset.y.dtype == torch.long and dataset.y.tolist() == arrays["train_labels"].ravel().tolist()
    x, y = dataset[1]  # flat, channel last (R, G, B of pixel (0, 0), then of pixel (0, 1)), divided by 256
    assert x[:7].tolist() == [0.0390625, 0.078125, 0.1171875, 0.15625, 0.1953125, 0.234375, 0.0]
    assert x.sum().item() == pytest.approx(210 / 256) and int(y) == int(arrays["train_labels"][1, 0])
    assert dataset.dev_y.tolist() == arrays["val_labels"].ravel().tolist()
    assert dataset.test_X.shape == (4, 6912) and dataset.test_y.dtype == torch.long


def test_load_dataset_with_bias_appends_a_column_of_ones(tmp_path):
    course_npz(tmp_path / "intel.npz")
    X, _ = utils.load_dataset(str(tmp_path / "intel.npz"), bias=True)["train"]
    assert X.shape == (4, 6913) and (X[:, -1] == 1).all()


def test_our_loader_puts_the_channels_first_and_divides_by_255(tmp_path):
    course_npz(tmp_path / "intel.npz")
    X, y = utils.load_images(str(tmp_path / "intel.npz"))["train"]
    assert X.shape == (4, 3, 48, 48) and X.dtype == torch.float32 and y.dtype == torch.long
    torch.testing.assert_close(X[1, :, 0, :2] * 255, torch.tensor([[10.0, 40], [20, 50], [30, 60]]))
    assert X[1].sum().item() == pytest.approx(210 / 255)


def test_configure_seed_sets_python_numpy_and_torch():
    draws = []
    for _ in range(2):
        utils.configure_seed(7)
        draws.append((random.random(), float(np.random.rand()), float(torch.rand(1))))
    utils.configure_seed(8)
    assert draws[0] == draws[1] != (random.random(), float(np.random.rand()), float(torch.rand(1)))
