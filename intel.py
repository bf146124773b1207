"""Q2 data: the Intel landscapes images (48x48 RGB, 6 classes) as float tensors, every key, shape, dtype
and label checked before any training; and the scrambled view the course skeleton's reshape gives."""
import os

import numpy as np
import torch

from cli import InputError

PATH = "data/intel_landscapes.v2.npz"
CLASSES = ["street", "sea", "mountain", "glacier", "forest", "buildings"]
SPLITS = {"train": "train", "dev": "val", "test": "test"}  # our name -> npz key prefix


def read_npz(data_path):
    """The arrays of an .npz file; an InputError naming the file otherwise."""
    hint = f"put the course's Intel landscapes file at {PATH}"
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
    bad = y[(y < 0) | (y >= len(CLASSES))]
    if len(bad):
        raise InputError(f"{data_path}: key '{key}' has label {bad[0].item()!r} outside 0-{len(CLASSES) - 1} "
                         f"({len(bad)} such labels)")
    return y.astype(np.int64)


def load(data_path=PATH, verbose=True):
    """Intel landscapes as {'train'|'dev'|'test': (X float (N,3,48,48) in [0,1], y long (N,))}; every key,
    shape, dtype and label checked before any training."""
    data, out, layouts = read_npz(data_path), {}, set()
    for split, key in SPLITS.items():
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


def skeleton_view(X):
    """What the course skeleton's CNN sees: its loader flattens each channel-last (48, 48, 3) image and
    its forward does x.reshape(B, 3, 48, -1), so each "channel" is a third of the interleaved R, G, B
    values. X (N, 3, 48, 48) in the true layout -> (N, 3, 48, 48) in that scrambled one."""
    return X.permute(0, 2, 3, 1).reshape(X.shape[0], 3, 48, 48)
