"""locks.py: a second run of the same name is refused at once, and a killed run's lock is cleared."""
import pytest

import cli
import locks


def test_the_run_lock_refuses_a_second_run_and_clears_a_stale_lock(tmp_path):
    path = tmp_path / "m.pt"
    with locks.run_lock(path):
        with pytest.raises(cli.InputError, match="another run"):
            with locks.run_lock(path):
                pass
    assert not (tmp_path / "m.pt.lock").exists()
    (tmp_path / "m.pt.lock").write_text("999999999")  # a run that was killed
    with locks.run_lock(path):
        pass
