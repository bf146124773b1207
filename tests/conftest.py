import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "report"))  # report/reporting.py

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def course_file(name):
    """Path of a course data file under data/, or skip the test with a reason."""
    path = os.path.join(ROOT, "data", name)
    if not os.path.exists(path):
        pytest.skip(f"course data data/{name} absent (.ci/run links it from ../shared/data)")
    return path


def run_script(script, *args, cwd=None, stdin=None, timeout=300):
    """Run one of the repository's scripts as a user would: (returncode, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONIOENCODING="utf-8")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, script), *map(str, args)], cwd=cwd or ROOT,
                          input=stdin, capture_output=True, timeout=timeout, env=env)
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


@pytest.fixture(params=DEVICES)
def device(request):
    """Every test that runs a model runs on the CPU and, where CUDA is available, on the GPU too."""
    return torch.device(request.param)
