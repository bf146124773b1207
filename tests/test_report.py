"""The report: built from the committed JSONs, no hand-typed numbers, numbers equal to the JSONs."""
import json
import os
import re

import pytest

from conftest import ROOT

REPORT = os.path.join(ROOT, "report", "report.typ")
# Constants of the assignment that the prose may state: learning rates, dropout, top-p.
ALLOWED = {"0.1", "0.01", "0.001", "0.003", "0.3", "0.8"}
UNIT = re.compile(r"(em|pt|cm|mm|in|fr|%)")


def prose_decimals(text):
    """Decimal literals in the source, less layout lengths (1.5em, 0.4pt, ...) and comments."""
    found = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("="):
            continue  # headings carry the assignment's numbering (1.1, 2.3, ...)
        line = line.split("//")[0]
        for m in re.finditer(r"(?<![\w.])\d+\.\d+", line):
            if not UNIT.match(line[m.end():]) and m.group() not in ALLOWED:
                found.append(f"line {lineno}: {m.group()}")
    return found


def test_no_hand_typed_decimal_in_the_report():
    with open(REPORT, encoding="utf-8") as f:
        assert prose_decimals(f.read()) == []


def test_the_decimal_check_can_fail():
    assert prose_decimals("The test accuracy is 0.734 and the margin 1.5em.") == ["line 1: 0.734"]


def load_build():
    import importlib.util

    spec = importlib.util.spec_from_file_location("build", os.path.join(ROOT, "report", "build.py"))
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return build


def test_final_build_refuses_placeholders_and_names_them(tmp_path, monkeypatch, capsys):
    build = load_build()
    group, contrib = tmp_path / "group.txt", tmp_path / "contributions.txt"
    group.write_text("PLACEHOLDER: the group\n")
    contrib.write_text("Ana wrote Q1 and Q2; João wrote Q3.\n")
    monkeypatch.setattr(build, "GROUP_FILES", {str(group): "the group", str(contrib): "contributions"})
    with pytest.raises(SystemExit) as e:
        build.build(str(tmp_path / "report.pdf"), final=True)
    assert e.value.code != 0 and not (tmp_path / "report.pdf").exists()
    assert "group.txt" in capsys.readouterr().err
    group.write_text("Group 7\nAna Silva\n")
    assert build.placeholders() == []


def results(path):
    full = os.path.join(ROOT, "results", path)
    if not os.path.exists(full):
        pytest.skip(f"results/{path} not produced yet")
    with open(full) as f:
        return json.load(f)


def test_report_builds_within_12_pages_and_its_numbers_equal_the_jsons(tmp_path):
    build = load_build()
    sweep = results("q2/sweep-vanilla.json")
    numbers = build.build(str(tmp_path / "report.pdf"))
    assert (tmp_path / "report.pdf").stat().st_size > 10_000
    assert 1 <= numbers["pages"] <= 12
    best = sweep["best_learning_rate"]
    assert numbers["q2_best_lr"] == best
    assert numbers["q2_vanilla_test"] == results(f"q2/{sweep['best_run']}.json")["final_test_acc"]
    assert numbers["q2_bn_test"] == results(f"q2/cnn-bn-lr{best:g}.json")["final_test_acc"]
    assert numbers["q3_noattn_cer"] == results("q3/no-attn-test-greedy.json")["cer"]
    assert numbers["q3_attn_cer"] == results("q3/attn-test-greedy.json")["cer"]
    if os.path.exists(os.path.join(ROOT, "results", "q3", "strongest.json")):
        assert numbers["q3_strongest_wer"] == results("q3/strongest.json")["test_wer"]
    assert numbers["q3_attn_wer"] == results("q3/attn-test-greedy.json")["wer"]
    assert numbers["q3_topp_wer_at_k"] == results("q3/attn-test-topp0.8.json")["wer_at_k"]
