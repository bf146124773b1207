"""Beyond the assignment: beam search, spelling your own words, error analysis, the strongest-model
study, input feeding, length bucketing and the benches. Each module runs as python -m beyond.NAME
from the repository root; they import the course files, which never import them."""
import importlib
import json

from utils import InputError

SCRIPTS = {"q2": "hw2-q2", "q3": "hw2-q3"}


def __getattr__(name):
    """q2 and q3: hw2-q2.py and hw2-q3.py as modules, loaded when a module first asks for one."""
    if name in SCRIPTS:
        return importlib.import_module(SCRIPTS[name])
    raise AttributeError(f"module 'beyond' has no attribute {name!r}")


def load_json(path, *fields):
    """The strict JSON record at path, holding these fields; an InputError naming the file."""
    def refuse(constant):
        raise ValueError(f"non-finite number {constant}")
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f, parse_constant=refuse)
    except OSError as e:
        raise InputError(f"{path}: {e.strerror}") from None
    except ValueError as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    missing = [k for k in fields if not isinstance(record, dict) or k not in record]
    if missing:
        raise InputError(f"{path}: missing field {missing[0]!r}")
    return record
