"""artefacts.py: the one writer (whole files, the usual permissions, the old file kept on a failed write),
a rerun's unchanged result left alone, and which run a result belongs to (trial runs, equivalent paths)."""
import os
import stat
import subprocess

import pytest

import artefacts
import cli


def test_writer_replaces_whole_files_with_the_usual_permissions(tmp_path):
    path = tmp_path / "r.json"
    artefacts.save_json({"a": 1}, path)
    umask = int(subprocess.run(["sh", "-c", "umask"], capture_output=True, text=True).stdout, 8)  # the OS's word
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask and path.read_text() == '{\n  "a": 1\n}\n'


def test_a_failed_write_leaves_the_old_file_whole_and_is_one_line(tmp_path):
    path = tmp_path / "r.json"
    artefacts.save_json({"a": 1}, path)

    def fail(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")
    with pytest.raises(cli.InputError, match=r"cannot write .*r.json: No space left on device"):
        artefacts.atomic_write(path, fail)
    assert path.read_text() == '{\n  "a": 1\n}\n' and [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_json_is_strict_a_non_finite_number_is_refused_by_name(tmp_path):
    with pytest.raises(cli.InputError, match="non-finite"):
        artefacts.save_json({"loss": float("nan")}, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


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


def test_a_result_under_an_equivalent_path_is_the_same_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    artefacts.save_json({"config": {"epochs": 40}}, "results/q2/x.json")
    for same in ("./results/q2/x.json", "results/q2/../q2/x.json", str(tmp_path / "results/q2/x.json")):
        assert artefacts.trial_path(same, {"config": {"epochs": 40}}) == same
        assert os.path.normpath(artefacts.trial_path(same, {"config": {"epochs": 1}})) == os.path.join("runs", "q2", "x.json")
