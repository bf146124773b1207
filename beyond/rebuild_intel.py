"""Rebuild the Intel landscapes file from the public images, as data/README.md describes, and print
a SHA-256 of each array to compare with those of our file (in data/README.md):

    python -m beyond.rebuild_intel FOLDER [--out data/intel_landscapes.v2.npz]
    python -m beyond.rebuild_intel --digest data/intel_landscapes.v2.npz   # an existing file's

FOLDER holds seg_train/<class>/*.jpg and seg_test/<class>/*.jpg (Kaggle's Intel Image
Classification). Each image is converted to RGB and resized straight to 48x48 (Pillow's bilinear
filter); the classes come in blocks in the course's label order, the files of a class sorted by name
as strings; the validation set is the first tenth (rounded up) of numpy's
RandomState(42).permutation of the training images, as sklearn's train_test_split(test_size=0.1,
random_state=42) takes it.
"""
import argparse
import hashlib
import math
import os

import numpy as np

from utils import CLASSES, IMAGE_SIDE, INTEL_PATH, InputError, atomic_write, home, read_npz, run

# five pictures that one GitHub copy of the images adds to seg_train (re-saved seg_pred pictures)
NOT_KAGGLE = {f"seg_train/{c}/0.jpg" for c in ("forest", "glacier", "mountain", "sea", "street")}


def image_files(folder, part):
    """[(path under folder, label)] of part (seg_train or seg_test), in class blocks, names sorted
    as strings."""
    files = []
    for label, name in enumerate(CLASSES):
        sub = os.path.join(folder, part, name)
        if not os.path.isdir(sub):
            raise InputError(f"{sub}: no such folder (FOLDER holds {part}/<class>/*.jpg)")
        files += [(f"{part}/{name}/{f}", label) for f in sorted(os.listdir(sub))
                  if f.lower().endswith(".jpg") and f"{part}/{name}/{f}" not in NOT_KAGGLE]
    return files


def read_image(path):
    from PIL import Image
    try:
        with Image.open(path) as img:
            small = img.convert("RGB").resize((IMAGE_SIDE, IMAGE_SIDE), Image.BILINEAR)
    except OSError as e:
        raise InputError(f"{path}: not a readable image ({e})") from None
    return np.asarray(small, dtype=np.uint8)  # (48, 48, 3)


def rebuild(folder, seed=42, val_fraction=0.1):
    """{key: array} in the layout of the course's file, and {split: [file]} of each row."""
    arrays, names = {}, {}
    train = image_files(folder, "seg_train")
    order = np.random.RandomState(seed).permutation(len(train))
    n_val = math.ceil(val_fraction * len(train))
    parts = {"train": [train[i] for i in order[n_val:]], "val": [train[i] for i in order[:n_val]],
             "test": image_files(folder, "seg_test")}
    for split, files in parts.items():
        images = [read_image(os.path.join(folder, f)) for f, _ in files]
        arrays[f"{split}_images"] = np.stack(images)  # (N, 48, 48, 3)
        arrays[f"{split}_labels"] = np.array([[label] for _, label in files], dtype=np.int64)
        names[split] = [f for f, _ in files]
    return arrays, names


def digests(arrays):
    """{key: SHA-256 of the array's bytes, C order}."""
    return {k: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
            for k, a in sorted(arrays.items())}


def report(arrays):
    for key, digest in digests(arrays).items():
        a = arrays[key]
        counts = (f" per label {np.bincount(a.reshape(-1), minlength=len(CLASSES)).tolist()}"
                  if key.endswith("labels") else "")
        print(f"{key:<13} {str(a.shape):<18} {a.dtype}  sha256 {digest}{counts}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", nargs="?", help="the images: seg_train/<class>/*.jpg, seg_test/...")
    p.add_argument("--out", default=home(INTEL_PATH), help="the .npz written (default: the "
                   "repository's data/intel_landscapes.v2.npz)")
    p.add_argument("--digest", metavar="NPZ",
                   help="print the checksums of an existing file instead")
    args = p.parse_args(argv)
    if args.digest:
        report(read_npz(args.digest))
        return 0
    if not args.folder:
        p.error("give the FOLDER of images, or --digest NPZ")
    arrays, _ = rebuild(args.folder)
    atomic_write(args.out, lambda f: np.savez_compressed(f, **arrays))
    report(arrays)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run(main)
