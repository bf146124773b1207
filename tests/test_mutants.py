"""The mistakes the test files' docstrings list (python tests/mutants.py tries each): every one names code
that stands exactly once in its file, a mistake that differs from it, and a test of the file that lists it."""
import os

import mutants
from conftest import ROOT


def test_every_listed_mistake_names_code_standing_once_and_a_test_of_its_file():
    listed = mutants.mutants()
    assert len(listed) >= 80 and len(set(listed)) == len(listed)
    for m in listed:
        with open(os.path.join(ROOT, m.file), encoding="utf-8") as f:
            assert f.read().count(m.given) == 1, m
        with open(os.path.join(ROOT, m.test_file), encoding="utf-8") as f:
            assert m.mistake != m.given and f"def {m.test}(" in f.read(), m
