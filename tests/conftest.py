import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def course_file(name):
    """Path of a course data file under data/, or skip the test with a reason."""
    path = os.path.join(ROOT, "data", name)
    if not os.path.exists(path):
        pytest.skip(f"course data data/{name} absent (.ci/run links it from ../shared/data)")
    return path
