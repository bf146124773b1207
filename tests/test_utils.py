"""utils.py is the course's: its hw2-q2.py calls, exactly as the course writes them, run on our file."""
import random

import numpy as np
import torch

import utils
from conftest import intel_npz


def course_npz(path, n=4):
    return dict(np.load(intel_npz(path, sizes=(n, n, n))))


def test_the_course_hw2_q2_data_calls_run_on_our_utils(tmp_path):
    arrays = course_npz(tmp_path / "intel.npz")
    utils.configure_seed(seed=42)
    data = utils.load_dataset(data_path=str(tmp_path / "intel.npz"))
    dataset = utils.ClassificationDataset(data)
    assert set(data) == {"train", "dev", "test"} and len(dataset) == 4
    assert dataset.X.dtype == torch.float32 and dataset.X.shape == (4, 48 * 48 * 3)
    assert dataset.y.dtype == torch.long and dataset.y.tolist() == arrays["train_labels"].ravel().tolist()
    expected = torch.tensor(arrays["train_images"][1].reshape(-1) / 256, dtype=torch.float32)  # channel last, / 256
    x, y = dataset[1]
    assert torch.equal(x, expected) and int(y) == int(arrays["train_labels"][1, 0])
    assert dataset.dev_y.tolist() == arrays["val_labels"].ravel().tolist()
    assert dataset.test_X.shape == (4, 6912) and dataset.test_y.dtype == torch.long


def test_load_dataset_with_bias_appends_a_column_of_ones(tmp_path):
    course_npz(tmp_path / "intel.npz")
    X, _ = utils.load_dataset(str(tmp_path / "intel.npz"), bias=True)["train"]
    assert X.shape == (4, 6913) and (X[:, -1] == 1).all()


def test_configure_seed_sets_python_numpy_and_torch():
    draws = []
    for _ in range(2):
        utils.configure_seed(7)
        draws.append((random.random(), float(np.random.rand()), float(torch.rand(1))))
    utils.configure_seed(8)
    assert draws[0] == draws[1] != (random.random(), float(np.random.rand()), float(torch.rand(1)))
