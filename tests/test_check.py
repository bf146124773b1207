"""python -m beyond.check: every check passes on our files and on a plain skeleton-shaped solution
(tests/skeleton_models.py, the skeleton's own hw2-q3.py, data.py, hw2-q2.py and utils.py with our
answers spliced in); on a copy of ours holding one planted mistake, exactly the check that names it
fails; a student's file that stops the process or hangs fails its own checks, one line each, and the other
files are still checked. The smoke run trains the skeleton-shaped models.py under our hw2-q3.py, then
tests it with top-p. Student code runs only in the checker's processes, never in this one."""
import json
import os
import shutil

import pytest

from beyond import check, check_probes
from conftest import ROOT, call_main, write_corpus
from test_swaps import with_ours

PLANTS = {  # name -> (file, given, mistake, the one check that must fail)
    "padding masked with 0, not -inf": (
        "models.py", 'scores.masked_fill(~mask[:, None], float("-inf"))', "scores.masked_fill(~mask[:, None], 0.0)", "attn_padding"),
    "nucleus drops the token that crosses p": (
        "hw2-q3.py", "keep = mass_before < p - 1e-9 * p", "keep = mass_before + sorted_probs < p", "nucleus_set"),
    "one-token steps lose their token, unlike teacher forcing": (
        "models.py", "if tgt.size(1) > 1:", "if True:", "teacher_forcing"),
    "flat images read channel-first (the skeleton's reshape)": (
        "hw2-q2.py", "x = x.reshape(x.shape[0], self.image_size, self.image_size, 3).permute(0, 3, 1, 2)",
        "x = x.reshape(x.shape[0], 3, 48, -1)", "layout"),
    "encoder state from the last padded step": (
        "models.py", "final_hidden = reshape_state((h[-2:], c[-2:]))",
        "final_hidden = (enc_output[:, -1][None], reshape_state((h[-2:], c[-2:]))[1])", "encoder_state"),
    "no dropout on the encoder's outputs": (
        "models.py", "return self.dropout(enc_output), final_hidden", "return enc_output, final_hidden", "dropout_sites"),
    "no dropout in the conv block": (
        "hw2-q2.py", "return self.dropout(self.pool(self.relu(self.bn(self.conv(x)))))",
        "return self.pool(self.relu(self.bn(self.conv(x))))", "conv_block"),
}
COURSE_FILES = ["hw2-q2.py", "utils.py", "models.py", "data.py", "hw2-q3.py"]
GROUPS = {file: [g for g, f in check_probes.FILES.items() if f == file] for file in COURSE_FILES}


def skeleton_shaped(skeleton, folder):
    """The skeleton's files, answered the plainest way: its hw2-q3.py with our nucleus_sampling,
    tests/skeleton_models.py as models.py, its hw2-q2.py with our ConvBlock, CNN and parameter count."""
    for q in ("hw2-q3", "hw2-q2"):
        shutil.copytree(os.path.join(skeleton, q), folder, dirs_exist_ok=True)
    shutil.copy(os.path.join(ROOT, "tests", "skeleton_models.py"), folder / "models.py")
    with_ours(folder / "hw2-q3.py", ["nucleus_sampling"])
    with_ours(folder / "hw2-q2.py", ["ConvBlock", "CNN", "get_number_trainable_params"])
    return str(folder)


def planted(folder, file, given, mistake):
    """A copy of our course files with mistake written over given in file."""
    folder.mkdir()
    for name in COURSE_FILES:
        shutil.copy(os.path.join(ROOT, name), folder / name)
    text = (folder / file).read_text(encoding="utf-8")
    assert text.count(given) == 1, f"{file}: {given!r} is not there exactly once"
    (folder / file).write_text(text.replace(given, mistake), encoding="utf-8")
    return str(folder)


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    """({name: folder}, the checks' results), every folder probed in one run of the checker."""
    from test_swaps import SKELETON
    if not os.path.isdir(SKELETON):
        pytest.skip(f"the course skeleton is not at {SKELETON}")
    tmp = tmp_path_factory.mktemp("check")
    folders = {"ours": ROOT, "skeleton-shaped": skeleton_shaped(SKELETON, tmp / "student")}
    jobs = [(f, g) for f in folders.values() for g in check_probes.FILES]
    for i, (name, (file, given, mistake, _)) in enumerate(PLANTS.items()):
        folders[name] = planted(tmp / f"plant{i}", file, given, mistake)
        jobs += [(folders[name], g) for g in GROUPS[file]]
    folders["unanswered"] = str(tmp / "unanswered")
    for q in ("hw2-q3", "hw2-q2"):
        shutil.copytree(os.path.join(SKELETON, q), folders["unanswered"], dirs_exist_ok=True)
    jobs += [(folders["unanswered"], g) for g in check_probes.FILES]
    stop = "        emb = self.dropout(self.embedding(src))"
    folders["stops"] = planted(tmp / "stops", "models.py", stop, "        import os; os._exit(7)\n" + stop)
    jobs += [(folders["stops"], g) for g in ("Q3a", "Q3b", "Q3c")]
    return folders, check.probe(jobs, check.reference(), timeout=300)


def failed(results, folder):
    return {c for (f, c), (status, _) in results.items() if f == folder and status != "PASS"}


@pytest.mark.parametrize("name", ["ours", "skeleton-shaped"])
def test_every_check_passes_on_a_right_solution(probed, name):
    folders, results = probed
    assert len([f for f, _ in results if f == folders[name]]) == len(check_probes.CHECKS)
    assert not failed(results, folders[name]), {c: results[folders[name], c] for c in failed(results, folders[name])}


@pytest.mark.parametrize("name", PLANTS)
def test_a_planted_mistake_fails_exactly_the_check_that_names_it(probed, name):
    folders, results = probed
    file, _, _, check_id = PLANTS[name]
    assert failed(results, folders[name]) == {check_id}
    probed_checks = {c for f, c in results if f == folders[name]}
    assert probed_checks == {c for c, (g, *_) in check_probes.CHECKS.items() if g in GROUPS[file]}


def test_code_that_stops_the_process_fails_its_own_checks_and_the_rest_still_run(probed):
    folders, results = probed
    mine = {c: results[f, c] for f, c in results if f == folders["stops"]}
    assert mine["encoder_outputs"][0] == "FAIL" and "stopped the process" in mine["encoder_outputs"][1]
    stopped = {c for c, (status, found) in mine.items() if "stopped the process" in found}
    assert stopped == {c for c, (g, *_) in check_probes.CHECKS.items() if g == "Q3a"}
    assert {c for c, (status, _) in mine.items() if status == "PASS"} == {
        c for c, (g, *_) in check_probes.CHECKS.items() if g in ("Q3b", "Q3c")}


def test_the_skeleton_unanswered_fails_every_check_but_those_of_its_given_code_in_one_line_each(probed):
    folders, results = probed
    mine = {c: found for (f, c), (status, found) in results.items() if f == folders["unanswered"]}
    assert failed(results, folders["unanswered"]) == set(check_probes.CHECKS) - {"reshape_state", "wer_at_k"}
    assert all(found.count("\n") == 0 and "Traceback" not in found for found in mine.values())
    assert mine["encoder_outputs"] == "raised NotImplementedError: Add your implementation."


def test_code_that_hangs_fails_its_checks_when_the_time_is_up(tmp_path):
    folder = planted(tmp_path / "hangs", "hw2-q3.py", "import argparse\n", "import time; time.sleep(600)\nimport argparse\n")
    results = check.probe([(folder, "Q3c")], check.reference(), timeout=5)
    assert {c: r for (_, c), r in results.items()} == {
        c: ("FAIL", "timed out after 5 s") for c, (g, *_) in check_probes.CHECKS.items() if g == "Q3c"}


def test_the_smoke_run_trains_and_tests_a_skeleton_shaped_models_py_under_our_driver(tmp_path):
    """The swap of a student's models.py under our hw2-q3.py: train with attention, test with top-p."""
    shutil.copy(os.path.join(ROOT, "tests", "skeleton_models.py"), tmp_path / "models.py")
    data_dir = write_corpus(tmp_path / "data")
    assert check.smoke(str(tmp_path), ["--use_attn"], timeout=300, data_dir=data_dir) == ("PASS", "")


def test_the_command_prints_a_line_per_check_and_fails_with_a_failing_check(tmp_path):
    """A folder holding only the skeleton's hw2-q3.py: it does not import (no data.py), a line for each of
    its checks; the other files' checks are skipped."""
    from test_swaps import SKELETON
    if not os.path.isdir(SKELETON):
        pytest.skip(f"the course skeleton is not at {SKELETON}")
    shutil.copy(os.path.join(SKELETON, "hw2-q3", "hw2-q3.py"), tmp_path / "hw2-q3.py")
    code, out, err = call_main("beyond.check", tmp_path, "--json", tmp_path / "c.json")  # the probes in their process
    lines = out.splitlines()
    assert code == 1 and lines[-1] == "0 passed, 4 failed, 21 skipped", out + err
    assert sum(line.startswith("FAIL  Q3.1(c)") for line in lines) == 4
    assert "found: hw2-q3.py does not import: ModuleNotFoundError: No module named 'data'" in out
    assert json.loads((tmp_path / "c.json").read_text())["counts"] == {"PASS": 0, "FAIL": 4, "SKIP": 21}
