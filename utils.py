"""What the scripts share. First the course's utils.py, its given code kept (configure_seed,
load_dataset, ClassificationDataset); then ours: the Intel images for our Q2 (every key, shape,
dtype and label checked), one-line errors, files written whole, figures in one style."""
import os
import random

import numpy as np
import torch

import argparse  # ours, after the given imports
import json
import math
import sys


def configure_seed(seed):
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed(seed)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def load_dataset(data_path, bias=False):
    data = read_npz(data_path)  # ours, for np.load: every key, shape, dtype and label checked

    train_X = data["train_images"].reshape([data["train_images"].shape[0], -1])/256
    dev_X = data["val_images"].reshape([data["val_images"].shape[0], -1])/256
    test_X = data["test_images"].reshape([data["test_images"].shape[0], -1])/256

    train_y = np.asarray(data["train_labels"]).squeeze()
    dev_y = np.asarray(data["val_labels"]).squeeze()
    test_y = np.asarray(data["test_labels"]).squeeze()

    if bias:
        train_X = np.hstack((train_X, np.ones((train_X.shape[0], 1))))
        dev_X = np.hstack((dev_X, np.ones((dev_X.shape[0], 1))))
        test_X = np.hstack((test_X, np.ones((test_X.shape[0], 1))))

    return {
        "train": (train_X, train_y), "dev": (dev_X, dev_y), "test": (test_X, test_y),
    }


class ClassificationDataset(torch.utils.data.Dataset):

    def __init__(self, data):
        """
        data: the dict returned by utils.load_pneumonia_data
        """
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


# ---- ours: the Intel images, one-line errors ---------------------------------------------------

HOME = os.path.dirname(os.path.abspath(__file__))  # the repository, where the defaults point


def home(path):
    """path in the repository, as seen from the working folder: the scripts' default paths, which
    hold wherever a script is started from (a path given on the command line is taken as given)."""
    try:
        return os.path.relpath(os.path.join(HOME, path))
    except ValueError:  # Windows: the working folder on another drive
        return os.path.join(HOME, path)


def as_recorded(path):
    """path as records and checkpoints keep it: relative to the repository when inside it (the same
    from any working folder), else absolute."""
    full = os.path.abspath(path)
    try:
        inside = os.path.commonpath([HOME, full]) == HOME
    except ValueError:  # Windows: another drive
        inside = False
    return os.path.relpath(full, HOME) if inside else full


INTEL_PATH = "data/intel_landscapes.v2.npz"  # in the repository
CLASSES = ["street", "sea", "mountain", "glacier", "forest", "buildings"]
IMAGE_SIDE = 48  # the images are IMAGE_SIDE x IMAGE_SIDE x 3, colours last
SPLITS = {"train": "train", "dev": "val", "test": "test"}  # our split name -> the npz key prefix


class InputError(ValueError):
    """Bad input; its message names the file, line, key or flag."""


def read_npz(data_path):
    """{key: array} of the Intel .npz file, every split's images and labels checked; an InputError
    naming the file and key otherwise."""
    if not os.path.isfile(data_path):
        raise InputError(f"{data_path}: file not found; put the Intel file at {home(INTEL_PATH)}")
    try:
        npz = np.load(data_path)
        arrays = {k: npz[k] for k in npz.files}
    except Exception as e:  # truncated, not an npz, object arrays
        raise InputError(f"{data_path}: not a readable .npz file ({type(e).__name__})") from None
    for key in SPLITS.values():
        for k in (f"{key}_images", f"{key}_labels"):
            if k not in arrays:
                raise InputError(f"{data_path}: missing key '{k}'")
        x, y = arrays[f"{key}_images"], arrays[f"{key}_labels"].reshape(-1)
        if x.ndim != 4 or x.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE, 3) or len(x) == 0:
            raise InputError(f"{data_path}: key '{key}_images' has shape {x.shape}, "
                             f"expected (N,{IMAGE_SIDE},{IMAGE_SIDE},3) with N > 0")
        if x.dtype != np.uint8 or y.dtype.kind not in "iu" or len(y) != len(x):
            raise InputError(f"{data_path}: '{key}_images' must be uint8 and '{key}_labels' N "
                             f"integers, found {x.dtype} and {len(y)} {y.dtype}")
        if ((y < 0) | (y >= len(CLASSES))).any():
            raise InputError(f"{data_path}: key '{key}_labels' has a label outside "
                             f"0-{len(CLASSES) - 1}")
    return arrays


def load_images(data_path=INTEL_PATH):
    """Our Q2 loader: {"train" | "dev" | "test": (X float (N, 3, 48, 48) in [0, 1], y long (N,))},
    the channels where the convolution expects them."""
    data = read_npz(data_path)
    images = lambda key: torch.from_numpy(data[f"{key}_images"].transpose(0, 3, 1, 2).copy())
    return {split: (images(key).float() / 255.0,
                    torch.from_numpy(data[f"{key}_labels"].reshape(-1).astype(np.int64)))
            for split, key in SPLITS.items()}


# ---- the command line: flags in their domain, one-line errors ----------------------------------

def in_range(kind, low=-math.inf, high=math.inf, low_open=False, high_open=False):
    """An argparse type: a finite kind(s) in the interval from low to high (open ends as asked)."""
    def check(s):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {s!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {s!r}")
        if v < low or v > high or (low_open and v == low) or (high_open and v == high):
            left = "(" if low_open or math.isinf(low) else "["
            right = ")" if high_open or math.isinf(high) else "]"
            raise argparse.ArgumentTypeError(f"must be in {left}{low}, {high}{right}, got {s}")
        return v
    check.__name__ = kind.__name__
    return check


def get_device(name="auto", flag="--device"):
    """'auto' is cuda when available; a device this machine lacks is an InputError naming flag."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"{flag} {name!r}: expected cpu, cuda, cuda:N, mps or auto") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": torch.backends.mps.is_available()}
    if not available.get(device.type, False):
        raise InputError(f"{flag} {name}: not available here (use cpu or auto)")
    return device


def set_threads(n):
    """n > 0 sets torch's CPU threads (1, the scripts' default, gives the committed numbers); 0
    keeps torch's default."""
    if n > 0:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def run(main, argv=None, kept="nothing"):
    """Run main(argv) as a program: an InputError is one line on stderr and exit 2; Ctrl-C exit 130,
    saying what is kept (a run that keeps epochs says so itself); main's return value is the exit
    code."""
    try:
        code = main(argv)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: {kept} is kept", file=sys.stderr)
        code = 130
    sys.exit(code or 0)


# ---- files written whole: a temp file beside the target, then a rename -------------------------

def atomic_write(path, write):
    """write(f) into a temp file beside path, then rename it over path: never half a file."""
    folder, name = os.path.split(os.fspath(path))
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{name}")
    try:
        os.makedirs(folder or ".", exist_ok=True)
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if os.path.isfile(tmp):
            os.remove(tmp)


def save_json(obj, path):
    """Strict JSON (a NaN is refused by name), written whole."""
    try:
        text = json.dumps(obj, indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    except ValueError as e:
        raise InputError(f"{path}: refusing to write a non-finite number ({e})") from None
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    return path


# ---- figures: one style; PDF for the report, PNG for the README --------------------------------

def pyplot():
    """Matplotlib, headless, with one look for every figure (printed at this size: 8 pt text)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "figure.figsize": (3.3, 2.3), "figure.dpi": 110, "savefig.bbox": "tight", "axes.grid": True,
        "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False, "font.size": 8,
        "axes.titlesize": 8, "legend.fontsize": 8, "xtick.labelsize": 8, "ytick.labelsize": 8,
        "legend.frameon": False})
    return plt


def save_figure(fig, stem, png=False):
    """stem.pdf (and stem.png), each written whole; returns the paths."""
    paths = [f"{stem}.pdf"] + ([f"{stem}.png"] if png else [])
    try:
        for fmt in ("pdf", "png")[:len(paths)]:
            atomic_write(f"{stem}.{fmt}", lambda f: fig.savefig(
                f, format=fmt, dpi=150 if fmt == "png" else None,
                metadata={"CreationDate": None} if fmt == "pdf" else None))
    finally:
        pyplot().close(fig)
    return paths


def plot_curves(epochs, curves, ylabel, stem, title=None, png=False, legend_loc="best"):
    """One line per entry of curves {label: values} against epochs; returns the paths written."""
    fig, ax = pyplot().subplots()
    for label, values in curves.items():
        ax.plot(epochs[: len(values)], values, label=label, marker="o", markersize=2.5)
    ax.set_xlabel("Epoch")
    ax.set_ylabel(ylabel)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        ax.set_title(title)
    if len(curves) > 1:
        ax.legend(loc=legend_loc)
    return save_figure(fig, stem, png=png)
