"""The READMEs say only what is true of today's repository: every script and module they name exists,
every flag they give a script is one of its flags, every file they name under results/, beyond/, tests/,
report/ or data/ is there (a dated note may keep a name since gone, if it says "since removed"), and the
Intel checksums of data/README.md are those of the data file, where it is present."""
import os
import re
from fnmatch import fnmatch

import numpy as np
import pytest

from beyond import rebuild_intel
from conftest import ROOT

READMES = ["README.md", "data/README.md", "results/README.md", "beyond/README.md"]
SCRIPT = re.compile(r"python3? (-m (beyond\.[a-z]\w*)|([\w/-]+\.py))((?: +[^`|;&]*)?)")
NOT_COMMITTED = {"train.tsv", "valid.tsv", "test.tsv", "intel_landscapes.v2.npz"}  # data/, git-ignored
SKIP = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", "runs"}
FILES = [os.path.relpath(os.path.join(folder, f), ROOT) for folder, dirs, files in os.walk(ROOT)
         if not set(os.path.relpath(folder, ROOT).split(os.sep)) & SKIP for f in files]


def spans(name):
    """The `code` spans and fenced lines of a README, without those a note says are gone."""
    text = open(os.path.join(ROOT, name), encoding="utf-8").read()
    found = re.findall(r"`([^`\n]+)`(?![^.;)]*since removed)", text)
    return found + [line for block in re.findall(r"```\w*\n(.*?)```", text, re.S) for line in block.splitlines()]


def source(module, path):
    return open(os.path.join(ROOT, path if path else module.replace(".", "/") + ".py"), encoding="utf-8").read()


def expand(pattern):
    """The paths a README's {a,b} and * pattern names."""
    head, brace, tail = pattern.partition("{")
    if not brace:
        return [pattern]
    inner, _, rest = tail.partition("}")
    return [p for option in inner.split(",") for p in expand(head + option + rest)]


@pytest.mark.parametrize("name", READMES)
def test_every_script_and_flag_a_readme_names_exists(name):
    missing = []
    for span in spans(name):
        for match in SCRIPT.finditer(span):
            module, path, args = match.group(2), match.group(3), match.group(4)
            where = path if path else module.replace(".", "/") + ".py"
            if not os.path.isfile(os.path.join(ROOT, where)):
                missing.append(where)
                continue
            text = source(module, path)
            for flag in re.findall(r"(?<![\w-])--?([a-z][\w]*)", args):
                if f'"{flag}"' not in text and f'"-{flag}"' not in text and f'"--{flag}"' not in text:
                    missing.append(f"{where} {flag}")
    assert not missing


@pytest.mark.parametrize("name", READMES)
def test_every_file_a_readme_names_exists(name):
    missing = []
    for span in spans(name):
        for word in re.findall(r"[\w.{},*/-]+\.(?:py|json|pdf|png|txt|md|sh|typ|npz|tsv)\b", span):
            found = any(fnmatch(path, os.path.normpath(pattern)) or fnmatch(path, "*/" + pattern)
                        for pattern in expand(word) for path in FILES)
            if not found and os.path.basename(word) not in NOT_COMMITTED and not word.startswith("runs/"):
                missing.append(word)
    assert not missing


def test_the_intel_checksums_of_data_readme_are_those_of_the_file():
    path = os.path.join(ROOT, "data", "intel_landscapes.v2.npz")
    if not os.path.isfile(path):
        pytest.skip("no data/intel_landscapes.v2.npz here")
    readme = open(os.path.join(ROOT, "data", "README.md"), encoding="utf-8").read()
    with np.load(path) as npz:  # the labels only: the images take seconds to read
        labels = {k: npz[k] for k in npz.files if k.endswith("labels")}
    for key, digest in rebuild_intel.digests(labels).items():
        assert f"{key}" in readme and f"sha256 {digest}" in readme
