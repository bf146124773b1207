"""The course's utils.py for Q2, with the course's names, signatures and behaviour: configure_seed,
load_dataset and ClassificationDataset. hw2-q2.py itself loads the images through intel.py (the true
channel layout, every input checked); these serve the course's own scripts and are tested against them."""
import numpy as np
import torch

import intel
from cli import configure_seed  # noqa: F401  (the course's utils.configure_seed)


def load_dataset(data_path=intel.PATH, bias=False):
    """The course's loader: {"train" | "dev" | "test": (X, y)} with each image flattened in the file's
    order (N, 48*48*3, channel last) and divided by 256, labels squeezed to (N,); bias appends a 1."""
    data = intel.read_npz(data_path)
    out = {}
    for split, key in intel.SPLITS.items():
        X = data[f"{key}_images"].reshape([data[f"{key}_images"].shape[0], -1]) / 256
        if bias:
            X = np.hstack((X, np.ones((X.shape[0], 1))))
        out[split] = (X, np.asarray(data[f"{key}_labels"]).squeeze())
    return out


class ClassificationDataset(torch.utils.data.Dataset):
    """The course's dataset: the training split as X (float32) and y (long), the others as dev_X, dev_y,
    test_X, test_y; items are (X[i], y[i])."""

    def __init__(self, data):
        train_X, train_y = data["train"]
        dev_X, dev_y = data["dev"]
        test_X, test_y = data["test"]
        self.X = torch.tensor(train_X, dtype=torch.float32)
        self.y = torch.tensor(train_y, dtype=torch.long)
        self.dev_X = torch.tensor(dev_X, dtype=torch.float32)
        self.dev_y = torch.tensor(dev_y, dtype=torch.long)
        self.test_X = torch.tensor(test_X, dtype=torch.float32)
        self.test_y = torch.tensor(test_y, dtype=torch.long)

    def __len__(self):
        return len(self.X)

    def __getitem__(self, idx):
        return self.X[idx], self.y[idx]
