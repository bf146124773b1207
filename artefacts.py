"""Artefacts: the one writer of every file (temp file, fsync, rename; strict JSON), checks that an output
can be written, and run identity: when a result is the same run, and where a trial run goes."""
import json
import os
import tempfile

from cli import InputError

RUNS_DIR = "runs"  # git-ignored: trial runs, training states, the study's checkpoints, logs


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
    """Fail before the work, not after, when path cannot be written (a file where a folder should be, a
    folder in its place, no permission). Creates nothing: a refused run leaves no empty folder behind."""
    name = f"{flag} {path}" if flag else path
    existing = os.path.dirname(os.fspath(path)) or "."
    while not os.path.exists(existing):  # the nearest folder that exists: the writer makes the rest
        existing = os.path.dirname(existing) or "."
    if not os.path.isdir(existing):
        raise InputError(f"{name}: {existing} is a file, not a folder")
    if os.path.isdir(path):
        raise InputError(f"{name}: is a folder")
    if not os.access(existing, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise InputError(f"{name}: permission denied")


def check_folder(folder, flag):
    """An output folder that exists or can be made, and is writable."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise InputError(f"{flag} {folder}: is a file, not a folder")
    check_writable(os.path.join(folder, "probe.json"), flag=flag)


def same_run(path, identity):
    """True when the record at path holds the run identity describes (its fields named in identity, e.g.
    config, equal identity's, noise aside): the one rule by which a run is reused or overwritten."""
    record = _recorded(path)
    return isinstance(record, dict) and all(strip_noise(record.get(k)) == _normal(v) for k, v in identity.items())


def differences(path, identity):
    """What makes a run other than the one recorded at path: ["lr 0.001 -> 0.002", "device 'cpu' -> 'cuda'"],
    the fields of a dict (a config) one by one."""
    record = _recorded(path)
    record = record if isinstance(record, dict) else {}
    out = []
    for key, value in identity.items():
        old, new = strip_noise(record.get(key)), _normal(value)
        pairs = [(f, old.get(f), new.get(f)) for f in {**old, **new}] if isinstance(old, dict) and isinstance(new, dict) \
            else [(key, old, new)]
        out += [f"{f} {a!r} -> {b!r}" for f, a, b in pairs if a != b]
    return out


def trial_notice(path, out, identity):
    """The line that says why a run goes to out instead of path: the settings it differs in."""
    return (f"a trial run: {path} records a run of other settings ({'; '.join(differences(path, identity))}), "
            f"so this one goes to {out}")


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
