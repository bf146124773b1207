"""The command line of every script: one-line errors, flag types, and the seed, threads and device of a run."""
import argparse
import math
import os
import random
import sys

import numpy as np
import torch


class InputError(ValueError):
    """Bad input; its message names the file, line, key or flag."""


def die(message, code=2):
    """One clear line on stderr, then a non-zero exit."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def run(main):
    """Run main() as a command-line program: an InputError is one line and exit 2, a closed stdout pipe
    (`| head -1`) a quiet exit, Ctrl-C one line and exit 130; main's return value is the exit code."""
    try:
        check_folder_of(sys.argv[0])
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


def check_folder_of(script):
    """The default paths (data/, results/, attn.pt) are the repository's: run from a folder inside the
    repository other than the script's own (cd report), a script would read and write in the wrong place."""
    root, here = os.path.dirname(os.path.abspath(script)), os.getcwd()
    if here != root and here.startswith(root + os.sep):
        raise InputError(f"run {os.path.basename(script)} from the repository root: cd {os.path.relpath(root)}")


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


def configure_seed(seed):
    """One seed sets python, numpy and torch (CPU and CUDA) (the course's utils.configure_seed)."""
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed(seed)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


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


def read_lines(arguments):
    """The arguments, or else the non-empty lines of standard input (UTF-8; a byte-order mark dropped)."""
    if arguments:
        lines = arguments
    else:
        try:
            lines = sys.stdin.buffer.read().decode("utf-8").removeprefix("\ufeff").splitlines()
        except UnicodeDecodeError as e:
            raise InputError(f"standard input: not UTF-8 (byte {e.object[e.start]:#04x} at offset {e.start})") from None
    return [line for line in lines if line.strip()]
