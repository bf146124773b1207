"""The one writer, the run lock and the flag types that every script shares."""
import argparse
import os
import stat

import pytest

import artefacts
import cli
import locks


def test_writer_replaces_whole_files_with_the_usual_permissions(tmp_path):
    path = tmp_path / "r.json"
    artefacts.save_json({"a": 1}, path)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o666 & ~artefacts._umask() and path.read_text() == '{\n  "a": 1\n}\n'


def test_a_failed_write_leaves_the_old_file_whole_and_is_one_line(tmp_path):
    path = tmp_path / "r.json"
    artefacts.save_json({"a": 1}, path)

    def fail(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")
    with pytest.raises(cli.InputError, match=r"cannot write .*r.json: No space left on device"):
        artefacts.atomic_write(path, fail)
    assert path.read_text() == '{\n  "a": 1\n}\n' and [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_rerunning_the_same_result_leaves_the_file_alone(tmp_path):
    path = tmp_path / "r.json"
    assert artefacts.save_result({"cer": 0.25, "wall_seconds": 3.0}, path)
    before = os.stat(path).st_mtime_ns
    assert not artefacts.save_result({"cer": 0.25 + 1e-13, "wall_seconds": 9.0}, path)  # noise and timings
    assert os.stat(path).st_mtime_ns == before
    assert artefacts.save_result({"cer": 0.26, "wall_seconds": 9.0}, path)


def test_a_trial_run_of_other_settings_goes_to_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    artefacts.save_json({"config": {"epochs": 40}}, "results/q2/x.json")
    assert artefacts.trial_path("results/q2/x.json", {"config": {"epochs": 40}}) == "results/q2/x.json"
    assert artefacts.trial_path("results/q2/x.json", {"config": {"epochs": 1}}) == os.path.join("runs", "q2", "x.json")
    assert artefacts.trial_path("results/q2/new.json", {"config": {"epochs": 1}}) == "results/q2/new.json"


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


@pytest.mark.parametrize("text, ok", [("0.5", True), ("1", True), ("nan", False), ("inf", False), ("abc", False),
                                      ("0", False), ("1.5", False)])
def test_flag_numbers_are_finite_and_in_range(text, ok):
    check = cli.in_range(float, 0.0, 1.0, low_open=True)
    if ok:
        assert check(text) == float(text)
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            check(text)
