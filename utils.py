"""What the scripts share: seeding, device choice, atomic writes, plots, the Intel loader."""
import argparse
import json
import os
import random
import sys
import tempfile

import numpy as np
import torch

INTEL_PATH = "data/intel_landscapes.v2.npz"
INTEL_CLASSES = ["street", "sea", "mountain", "glacier", "forest", "buildings"]
INTEL_SPLITS = {"train": "train", "dev": "val", "test": "test"}  # our name -> npz key prefix


def load_script(name):
    """Import a script whose file name has a dash (hw2-q2, hw2-q3) as a module."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def configure_seed(seed):
    """One seed sets python, numpy and torch (CPU and CUDA)."""
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def get_device(name="auto"):
    """'auto' picks cuda when available; 'cuda' without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        die(f"device {name!r}: expected cpu, cuda, cuda:N or auto")
    if device.type == "cuda" and not torch.cuda.is_available():
        die(f"device {name}: CUDA is not available on this machine (use cpu or auto)")
    return device


def in_range(kind, low, high=None, low_open=False):
    """An argparse type: kind(s) with low <= value (low < value if low_open) and value <= high."""
    def check(s):
        v = kind(s)
        if v < low or (low_open and v == low) or (high is not None and v > high):
            bounds = f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'}{']' if high is not None else ')'}"
            raise argparse.ArgumentTypeError(f"must be in {bounds}, got {s}")
        return v
    return check


def die(message):
    """One clear line on stderr, then a non-zero exit."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _atomic_replace(path, write):
    """Write through a temp file in the same folder, then rename: a crash never leaves half a file."""
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_json(obj, path):
    """Atomically write obj as indented JSON."""
    _atomic_replace(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))


def load_json(path):
    """The JSON object in path; a one-line error naming the file if it is missing or not JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        die(f"{path}: cannot read JSON ({type(e).__name__}: {e})")


def save_checkpoint(obj, path):
    """Atomically torch.save obj (state_dicts and plain types only, so weights_only loading works)."""
    try:
        _atomic_replace(path, lambda f: torch.save(obj, f))
    except OSError as e:
        die(f"cannot write checkpoint {path}: {e.strerror}")


def check_writable(path):
    """Fail before training, not after, when a file cannot be written where asked."""
    folder = os.path.dirname(os.fspath(path)) or "."
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        die(f"cannot create folder {folder} for {path}: {e.strerror}")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        die(f"cannot write {path}: permission denied")


def plt_style():
    """Matplotlib with a headless backend and one look for every figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "figure.figsize": (5.5, 3.6), "figure.dpi": 110, "savefig.bbox": "tight",
        "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
        "axes.spines.right": False, "font.size": 10, "legend.frameon": False,
    })
    return plt


def save_figure(fig, stem):
    """Write stem.pdf (for the report) and stem.png (for the README); return both paths."""
    plt = plt_style()
    os.makedirs(os.path.dirname(stem) or ".", exist_ok=True)
    paths = [f"{stem}.pdf", f"{stem}.png"]
    for p in paths:
        fig.savefig(p, dpi=150 if p.endswith(".png") else None, metadata=None if p.endswith(".png") else {"CreationDate": None})
    plt.close(fig)
    return paths


def plot(epochs, plottables, ylabel, stem, title=None, xlabel="Epoch"):
    """One line per entry of plottables {label: values}, against epochs."""
    plt = plt_style()
    fig, ax = plt.subplots()
    for label, values in plottables.items():
        ax.plot(epochs[: len(values)], values, label=label, marker="o", markersize=2.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        ax.set_title(title)
    if len(plottables) > 1:
        ax.legend()
    return save_figure(fig, stem)


def load_dataset(data_path=INTEL_PATH, verbose=True):
    """Intel landscapes as {'train'|'dev'|'test': (X float (N,3,48,48) in [0,1], y long (N,))}.

    Accepts the layouts the course has shipped: (N,48,48,3), (N,3,48,48) and flat (N,6912) channel-first.
    """
    hint = f"put the course's Intel landscapes file at {INTEL_PATH} (there is no embedded default for these images)"
    if not os.path.exists(data_path):
        die(f"{data_path}: file not found; {hint}")
    try:
        data = np.load(data_path)
    except Exception as e:  # a truncated or non-npz file
        die(f"{data_path}: not a readable .npz file ({e}); {hint}")
    out, layouts = {}, set()
    for split, key in INTEL_SPLITS.items():
        xk, yk = f"{key}_images", f"{key}_labels"
        for k in (xk, yk):
            if k not in data.files:
                die(f"{data_path}: missing key '{k}' (expected keys {key}_images (N,48,48,3) and {key}_labels (N,)); {hint}")
        try:
            x, y = data[xk], data[yk].reshape(-1)
        except Exception as e:  # object arrays (pickles), damaged members
            die(f"{data_path}: cannot read '{xk}'/'{yk}' ({type(e).__name__}: {str(e).splitlines()[0]})")
        if x.ndim == 4 and x.shape[1:] == (48, 48, 3):
            layouts.add("(N,48,48,3)")
            x = x.transpose(0, 3, 1, 2)
        elif x.ndim == 4 and x.shape[1:] == (3, 48, 48):
            layouts.add("(N,3,48,48)")
        elif x.ndim == 2 and x.shape[1] == 3 * 48 * 48:
            layouts.add("flat (N,6912) channel-first")
            x = x.reshape(-1, 3, 48, 48)
        else:
            die(f"{data_path}: key '{xk}' has shape {tuple(x.shape)}, expected (N,48,48,3), (N,3,48,48) or (N,6912)")
        if len(y) != len(x):
            die(f"{data_path}: key '{yk}' has {len(y)} labels for {len(x)} images in '{xk}'")
        scale = np.issubdtype(x.dtype, np.integer) or x.max() > 1.0  # pixels 0..255; floats in [0,1] kept
        x = torch.from_numpy(np.ascontiguousarray(x)).float()
        if scale:
            x = x / 255.0
        out[split] = (x, torch.from_numpy(y.astype(np.int64)))
    if verbose:
        sizes = ", ".join(f"{s} {len(out[s][1]):,}" for s in out)
        print(f"Loaded {data_path}: layout {', '.join(sorted(layouts))}; {sizes}")
    return out
