import importlib.util
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def load_script(name):
    """Import a script whose file name has a dash (hw2-q2.py, hw2-q3.py) as a module."""
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), os.path.join(ROOT, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def course_file(name):
    """Path of a course data file under data/, or skip the test with a reason."""
    path = os.path.join(ROOT, "data", name)
    if not os.path.exists(path):
        pytest.skip(f"course data data/{name} absent (.ci/run links it from ../shared/data)")
    return path
