"""What the scripts share: seeding, devices, flag types, one-line errors, the one writer of every
artefact (atomic, strict JSON), run locks, figures, and the Intel loader."""
import argparse
import contextlib
import errno
import json
import math
import os
import random
import sys
import tempfile

import numpy as np
import torch

INTEL_PATH = "data/intel_landscapes.v2.npz"
INTEL_CLASSES = ["street", "sea", "mountain", "glacier", "forest", "buildings"]
INTEL_SPLITS = {"train": "train", "dev": "val", "test": "test"}  # our name -> npz key prefix
RUNS_DIR = "runs"  # git-ignored: trial runs, the study's checkpoints, logs


class InputError(ValueError):
    """Bad input; its message names the file, line, key or flag."""


def die(message, code=2):
    """One clear line on stderr, then a non-zero exit."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def cli(main):
    """Run main() as a command-line program: an InputError or OSError is one line and exit 2, a closed
    stdout pipe (`| head -1`) a quiet exit; main's return value is the exit code."""
    try:
        code = main()
        sys.stdout.flush()
    except InputError as e:
        die(str(e))
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def configure_seed(seed):
    """One seed sets python, numpy and torch (CPU and CUDA)."""
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def set_threads(n):
    """torch CPU threads: n > 0 sets them (1, the default of every script, is what the committed runs
    used; it is also the fastest for these small models on a shared CPU); 0 keeps torch's default."""
    if n > 0:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def get_device(name="auto", flag="--device"):
    """'auto' picks cuda when available; a device this machine lacks is an InputError naming the flag."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"{flag} {name!r}: expected cpu, cuda, cuda:N or auto") from None
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"{flag} {name}: only cpu and cuda are supported")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"{flag} {name}: CUDA is not available on this machine (use cpu or auto)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(f"{flag} {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def in_range(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse type: a finite kind(s) in the interval low..high (open ends as asked)."""
    name = "an integer" if kind is int else "a number"

    def check(s):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {name}, got {s!r}") from None
        if isinstance(v, float) and not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {s!r}")
        if (low is not None and (v < low or (low_open and v == low))) or \
                (high is not None and (v > high or (high_open and v == high))):
            lo = "-inf" if low is None else low
            hi = "inf" if high is None else high
            bounds = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
            raise argparse.ArgumentTypeError(f"must be in {bounds}, got {s}")
        return v
    check.__name__ = kind.__name__  # argparse names the type in its messages
    return check


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write):
    """The one writer: write(f) into a temp file beside path, flush, fsync, set the usual permissions
    (0666 less the umask), rename over path. An OSError is an InputError naming path; the old file stays."""
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix="-" + os.path.basename(path))
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def to_json(obj):
    """Strict JSON text (a NaN or infinity is a ValueError, never a bare NaN in the file)."""
    return json.dumps(obj, indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def save_json(obj, path):
    try:
        text = to_json(obj)
    except ValueError as e:
        raise InputError(f"{path}: refusing to write a non-finite number ({e})") from None
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


NOISE_KEYS = {"wall_seconds", "seconds", "epoch_seconds", "decode_seconds", "test_decode_seconds", "torch"}


def strip_noise(obj, digits=9):
    """obj without timings and with floats rounded: what two runs of the same command share."""
    if isinstance(obj, dict):
        return {k: strip_noise(v, digits) for k, v in obj.items() if k not in NOISE_KEYS}
    if isinstance(obj, list):
        return [strip_noise(v, digits) for v in obj]
    if isinstance(obj, float):
        return round(obj, digits)
    return obj


def _normal(obj):
    """obj as it reads back from its JSON, noise stripped: how two results are compared."""
    return strip_noise(json.loads(to_json(obj)))


def _recorded(path):
    """The JSON at path, or None when there is none or it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def save_result(obj, path):
    """save_json, except that a file holding the same result (timings and last-digit noise aside) is
    left as it is: rerunning a committed command leaves the repository unchanged. True if written."""
    old = _recorded(path)
    if old is not None and strip_noise(old) == _normal(obj):
        return False
    save_json(obj, path)
    return True


def load_json(path, what="JSON"):
    """The JSON object in path; an InputError naming the file if it is missing or not strict JSON."""
    reject = lambda c: (_ for _ in ()).throw(ValueError(f"non-finite number {c}"))
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f, parse_constant=reject)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file ({what})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 ({what})") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    except ValueError as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None


def require(record, keys, path):
    """record[k] for each k; an InputError naming path and the first missing key."""
    missing = [k for k in keys if not isinstance(record, dict) or k not in record]
    if missing:
        raise InputError(f"{path}: missing field {missing[0]!r}")
    return [record[k] for k in keys]


def check_writable(path, flag=None):
    """Fail before the work, not after, when path cannot be written (folder missing and uncreatable,
    a folder in its place, no permission)."""
    name = f"{flag} {path}" if flag else path
    folder = os.path.dirname(os.fspath(path)) or "."
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise InputError(f"{name}: {folder} is a file, not a folder")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise InputError(f"{name}: cannot create folder {folder} ({e.strerror})") from None
    if os.path.isdir(path):
        raise InputError(f"{name}: is a folder")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise InputError(f"{name}: permission denied")


def check_folder(folder, flag):
    """An output folder that exists or can be made, and is writable."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise InputError(f"{flag} {folder}: is a file, not a folder")
    check_writable(os.path.join(folder, "probe.json"), flag=flag)


@contextlib.contextmanager
def run_lock(path):
    """Hold path.lock for the duration of a run: a second run with the same output name fails at once."""
    lock = f"{os.fspath(path)}.lock"
    os.makedirs(os.path.dirname(lock) or ".", exist_ok=True)
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        pid = _lock_owner(lock)
        if pid is not None and _alive(pid):
            raise InputError(f"{path}: another run (pid {pid}) is writing it; wait for it or choose another name") from None
        os.remove(lock)  # a stale lock from a run that was killed
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.remove(lock)


def _lock_owner(lock):
    try:
        with open(lock) as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM
    return True


def same_run(path, identity):
    """True when the record at path holds the run identity describes (its fields named in identity, e.g.
    config, equal identity's, noise aside): the one rule by which a run is reused or overwritten."""
    record = _recorded(path)
    return isinstance(record, dict) and all(strip_noise(record.get(k)) == _normal(v) for k, v in identity.items())


def trial_path(path, identity):
    """Where a run's result goes: path itself when no file is there or the file records the same run
    (its fields named in identity, e.g. config, equal identity's), else the same name under runs/: a trial
    run (fewer epochs, another rate...) leaves the committed result alone."""
    if not os.path.exists(path) or same_run(path, identity):
        return path
    rel = os.path.relpath(path, "results")
    if rel.startswith(".."):  # an output folder of the user's own: its runs/ subfolder
        return os.path.join(os.path.dirname(path), RUNS_DIR, os.path.basename(path))
    return os.path.join(RUNS_DIR, rel)


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


def save_figure(fig, stem, png=False):
    """Write stem.pdf (for the report) and, with png, stem.png (for the README), each through the one
    writer; return the paths."""
    plt = plt_style()
    paths = [f"{stem}.pdf"] + ([f"{stem}.png"] if png else [])
    try:
        for p in paths:
            fmt = p.rsplit(".", 1)[1]
            meta = {"CreationDate": None} if fmt == "pdf" else None
            atomic_write(p, lambda f: fig.savefig(f, format=fmt, dpi=150 if fmt == "png" else None, metadata=meta))
    finally:
        plt.close(fig)
    return paths


def plot(epochs, plottables, ylabel, stem, title=None, xlabel="Epoch", png=False):
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
    return save_figure(fig, stem, png=png)


def read_npz(data_path):
    """The arrays of an .npz file; an InputError naming the file otherwise."""
    hint = f"put the course's Intel landscapes file at {INTEL_PATH}"
    if not os.path.exists(data_path):
        raise InputError(f"{data_path}: file not found; {hint}")
    if os.path.isdir(data_path):
        raise InputError(f"{data_path}: is a folder, not an .npz file")
    try:
        data = np.load(data_path)
    except Exception as e:  # a truncated or non-npz file
        raise InputError(f"{data_path}: not a readable .npz file ({type(e).__name__}); {hint}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise InputError(f"{data_path}: a single .npy array, not an .npz file with train/val/test keys; {hint}")
    return data


def _images(x, data_path, key):
    """(N, 3, 48, 48) from the layouts the course has shipped: (N,48,48,3), (N,3,48,48), flat (N,6912)."""
    if x.ndim == 4 and x.shape[1:] == (48, 48, 3):
        return x.transpose(0, 3, 1, 2), "(N,48,48,3)"
    if x.ndim == 4 and x.shape[1:] == (3, 48, 48):
        return x, "(N,3,48,48)"
    if x.ndim == 2 and x.shape[1] == 3 * 48 * 48:
        return x.reshape(-1, 3, 48, 48), "flat (N,6912) channel-first"
    raise InputError(f"{data_path}: key '{key}' has shape {tuple(x.shape)}, expected (N,48,48,3), (N,3,48,48) or (N,6912)")


def _labels(y, data_path, key, n_images):
    """Integer labels (N,) in 0..5; an InputError naming the key otherwise."""
    y = y.reshape(-1)
    if len(y) != n_images:
        raise InputError(f"{data_path}: key '{key}' has {len(y)} labels for {n_images} images")
    if not (np.issubdtype(y.dtype, np.integer) or (np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0))):
        raise InputError(f"{data_path}: key '{key}' holds {y.dtype} values, expected integer class ids 0-5")
    bad = y[(y < 0) | (y >= len(INTEL_CLASSES))]
    if len(bad):
        raise InputError(f"{data_path}: key '{key}' has label {bad[0].item()!r} outside 0-{len(INTEL_CLASSES) - 1} "
                         f"({len(bad)} such labels)")
    return y.astype(np.int64)


def load_dataset(data_path=INTEL_PATH, verbose=True):
    """Intel landscapes as {'train'|'dev'|'test': (X float (N,3,48,48) in [0,1], y long (N,))}; every key,
    shape, dtype and label checked before any training."""
    data, out, layouts = read_npz(data_path), {}, set()
    for split, key in INTEL_SPLITS.items():
        xk, yk = f"{key}_images", f"{key}_labels"
        for k in (xk, yk):
            if k not in data.files:
                raise InputError(f"{data_path}: missing key '{k}' (expected {key}_images (N,48,48,3) and {key}_labels (N,))")
        try:
            x, y = data[xk], data[yk]
        except Exception as e:  # object arrays (pickles), damaged members
            raise InputError(f"{data_path}: cannot read '{xk}'/'{yk}' ({type(e).__name__}: {str(e).splitlines()[0]})") from None
        x, layout = _images(x, data_path, xk)
        layouts.add(layout)
        if len(x) == 0:
            raise InputError(f"{data_path}: key '{xk}' holds no images")
        if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)) or \
                (np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all()):
            raise InputError(f"{data_path}: key '{xk}' holds {x.dtype} values, expected finite pixels")
        y = _labels(y, data_path, yk, len(x))
        scale = np.issubdtype(x.dtype, np.integer) or x.max() > 1.0  # pixels 0..255; floats in [0,1] kept
        x = torch.from_numpy(np.ascontiguousarray(x)).float()
        out[split] = (x / 255.0 if scale else x, torch.from_numpy(y))
    if verbose:
        sizes = ", ".join(f"{s} {len(out[s][1]):,}" for s in out)
        print(f"Loaded {data_path}: layout {', '.join(sorted(layouts))}; {sizes}")
    return out
