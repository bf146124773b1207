"""report/build.py: the report built from the committed JSONs after checking them,
every printed number equal to its JSON field, no hand-typed decimals, no typesetting slips, placeholders
refused by --final; the README's generated parts equal to what the JSONs give; the results manifest
behind reproduce.sh and the results index."""
import json
import os
import re
import shlex
import shutil
import subprocess

import pytest

import build
from utils import InputError
from conftest import ROOT, call_main, intel_npz, write_corpus

REPORT = os.path.join(ROOT, "report", "report.typ")
# Constants of the assignment that the prose may state: learning rates, dropout, top-p.
ALLOWED = {"0.1", "0.01", "0.001", "0.003", "0.3", "0.8"}
UNIT = re.compile(r"(em|pt|cm|mm|in|fr|%)")
CODE_LINE = re.compile(r"^\s*(#let|#set|#show|#import|//|\.\.|\)|\]|table\.header|image\(|caption:|grid\()")
EMBEDDED = re.compile(r"#[A-Za-z_][\w.\-]*(\((?:[^()]|\([^()]*\))*\))?;")
IF_BLOCK = re.compile(r"#if\b[^;]*\];")  # '#if c [a] else [b];': Typst swallows that ';' too


def prose_decimals(text):
    """Decimal literals in the source, less layout lengths (1.5em, 0.4pt, ...) and comments."""
    found = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("="):
            continue
        line = line.split("//")[0]
        for m in re.finditer(r"(?<![\w.])\d+\.\d+", line):
            if not UNIT.match(line[m.end():]) and m.group() not in ALLOWED:
                found.append(f"line {lineno}: {m.group()}")
    return found


def typesetting_slips(text):
    """Lines of prose where Typst would not print what the source says: a ';' right after an embedded
    #expression (Typst swallows it), a digit followed by ' (Typst makes it a prime), a full stop followed
    by ' (an opening quote); and a file path in the text, which a reader of the PDF cannot follow."""
    slips = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if CODE_LINE.match(line):
            continue
        prose = line.split(" //")[0]
        if EMBEDDED.search(prose) or IF_BLOCK.search(prose):
            slips.append(f"line {lineno}: ';' after an embedded expression")
        if re.search(r"\d'", prose):
            slips.append(f"line {lineno}: a digit followed by '")
        if re.search(r"\.'", prose):
            slips.append(f"line {lineno}: a full stop followed by ' (Typst opens a quote)")
        if re.search(r'(?<![\w"/])(results|runs|beyond|tests|report|data)/\w', prose):
            slips.append(f"line {lineno}: a file path in the text")
    return slips


def source():
    with open(REPORT, encoding="utf-8") as f:
        return f.read()


def test_no_hand_typed_decimal_and_no_typesetting_slip_in_the_report():
    text = source()
    assert prose_decimals(text) == [] and typesetting_slips(text) == []


def test_the_report_checks_can_fail():
    assert prose_decimals("The test accuracy is 0.734 and the margin 1.5em.") == ["line 1: 0.734"]
    assert typesetting_slips("the best epoch #fmt(x, d: 4); then") == ["line 1: ';' after an embedded expression"]
    assert typesetting_slips("round 1's choice") == ["line 1: a digit followed by '"]
    assert typesetting_slips("the best epoch #fmt(x)\\; then") == []
    assert typesetting_slips("Bahdanau et al.'s score") == ["line 1: a full stop followed by ' (Typst opens a quote)"]
    assert typesetting_slips("whose record is `results/q2/label-check.json`.") == ["line 1: a file path in the text"]
    assert typesetting_slips('#let r = json("/results/q1/retrieval.json")') == []
    assert typesetting_slips("for #if n == 3 [all seeds] else [#n seeds]; the choice") == [
        "line 1: ';' after an embedded expression"]


def results(path):
    with open(os.path.join(ROOT, "results", path)) as f:
        return json.load(f)


PRINTED = {  # the key num() records -> (result file, field) the number must come from
    "q2_vanilla_test": ("q2/cnn-vanilla-lr0.01.json", "final_test_acc"),
    "q2_bn_test": ("q2/cnn-bn-lr0.01.json", "final_test_acc"),
    "q3_noattn_cer": ("q3/no-attn-test-greedy.json", "cer"), "q3_noattn_wer": ("q3/no-attn-test-greedy.json", "wer"),
    "q3_attn_cer": ("q3/attn-test-greedy.json", "cer"), "q3_attn_wer": ("q3/attn-test-greedy.json", "wer"),
    "q3_topp_cer": ("q3/attn-test-topp0.8.json", "cer"), "q3_topp_wer": ("q3/attn-test-topp0.8.json", "wer"),
    "q3_topp_wer_at_k": ("q3/attn-test-topp0.8.json", "wer_at_k"), "q3_strongest_wer": ("q3/strongest.json", "test_wer"),
}


def test_report_builds_in_its_pages_and_prints_the_numbers_of_the_jsons(tmp_path):
    numbers = build.build(str(tmp_path / "report.pdf"))
    assert (tmp_path / "report.pdf").stat().st_size > 10_000
    assert numbers["pages"] <= 11 and numbers["appendix_page"] <= 9
    assert set(numbers["printed"]) == set(PRINTED)
    for key, (path, field) in PRINTED.items():
        assert numbers["printed"][key] == results(path)[field], key
    assert "PLACEHOLDER" not in numbers["contributions_shown"] and "report.typ" not in numbers["contributions_shown"]


def test_final_build_refuses_placeholders_and_names_them(tmp_path, monkeypatch):
    group, contrib = tmp_path / "group.txt", tmp_path / "contributions.txt"
    group.write_text("PLACEHOLDER: the group\n")
    contrib.write_text("Ana wrote Q1 and Q2; João wrote Q3.\n")
    monkeypatch.setattr(build, "GROUP_FILES", {str(group): "the group", str(contrib): "contributions"})
    with pytest.raises(InputError, match="group.txt") as e:
        build.build(str(tmp_path / "report.pdf"), final=True)
    assert "--final" in str(e.value) and not (tmp_path / "report.pdf").exists()
    group.write_text("Group 7\nAna Silva\n")
    assert build.placeholders() == []
    group.write_bytes("Grupo 7\nJoão\n".encode("latin-1"))
    with pytest.raises(InputError, match="group.txt: not UTF-8"):
        build.placeholders()


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_text('{"cer": 0.2,'), "attn-test-greedy.json: not valid JSON"),
    (lambda p: p.write_text('{"cer": NaN}'), "attn-test-greedy.json: not valid JSON"),
    (lambda p: p.write_text(json.dumps({k: v for k, v in json.loads(p.read_text()).items() if k != "wer_ci"})),
     "attn-test-greedy.json: missing field 'wer_ci'"),
    (lambda p: p.unlink(), "attn-test-greedy.json: No such file"),
])
def test_inputs_are_checked_and_named_before_compiling(tmp_path, damage, message):
    copy = tmp_path / "results"
    shutil.copytree(os.path.join(ROOT, "results"), copy)
    damage(copy / "q3" / "attn-test-greedy.json")
    with pytest.raises(InputError, match=message):
        build.check_inputs(str(copy))


def test_a_shorter_run_in_place_of_a_result_is_named(tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(os.path.join(ROOT, "results"), copy)
    path = copy / "q2" / "cnn-bn-lr0.01.json"
    record = json.loads(path.read_text())
    record["history"] = {k: v[:1] for k, v in record["history"].items()}
    path.write_text(json.dumps(record))
    with pytest.raises(InputError, match="cnn-bn-lr0.01.json: 1 epochs recorded, the report reads 40"):
        build.check_inputs(str(copy))


# ---- the results manifest: one table behind the report's inputs, reproduce.sh and the results index ----

def dry_run_commands():
    """The commands ./reproduce.sh would run, as argument lists."""
    proc = subprocess.run(["bash", "reproduce.sh", "q1"], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, DRY="1"))
    lines = proc.stdout.splitlines()
    for part in ("q2", "q3", "strong"):
        lines += subprocess.run(["bash", "reproduce.sh", part], cwd=ROOT, capture_output=True, text=True,
                                env=dict(os.environ, DRY="1")).stdout.splitlines()
    return [shlex.split(line[len("dry:"):]) for line in lines if line.startswith("dry:")]


def test_reproduce_sh_runs_every_command_of_the_manifest():
    commands = dry_run_commands()
    for entry in build.manifest():
        if entry["command"] and "<" not in entry["command"]:  # a placeholder: a run the study chooses
            assert shlex.split(entry["command"]) in commands, entry["file"]


def test_the_manifest_holds_every_json_the_report_reads_and_the_results_index_names_it():
    source = open(os.path.join(ROOT, "report", "report.typ"), encoding="utf-8").read()
    read = set(re.findall(r'json\("/results/([^"]+)"\)', source))
    files = {e["file"] for e in build.manifest()}
    assert read and read <= files
    for entry in build.manifest():
        assert os.path.exists(os.path.join(ROOT, "results", entry["file"])), entry["file"]
        assert entry["command"] or entry.get("frozen"), entry["file"]  # written by a command, or frozen data
    assert "manifest.json" in open(os.path.join(ROOT, "results", "README.md"), encoding="utf-8").read()


def expand_braces(pattern):
    """'q3/{a,b}-x.json' -> ['q3/a-x.json', 'q3/b-x.json'] (nested alternatives too)."""
    m = re.search(r"\{([^{}]*)\}", pattern)
    if not m:
        return [pattern]
    return [p for alt in m.group(1).split(",") for p in expand_braces(pattern[:m.start()] + alt + pattern[m.end():])]


def test_the_results_index_has_a_row_for_every_file_of_the_manifest():
    import fnmatch

    index = open(os.path.join(ROOT, "results", "README.md"), encoding="utf-8").read()
    patterns, folder = [], ""
    for row in (line for line in index.splitlines() if line.startswith("| `")):
        for token in re.findall(r"`([^`]+)`", row.split("|")[1]):
            folder = token.split("/")[0] + "/" if "/" in token else folder  # a name without folder: the row's
            patterns += expand_braces(token if "/" in token else folder + token)
    for entry in build.manifest():
        assert any(fnmatch.fnmatch(entry["file"], p) for p in patterns), entry["file"]


def test_the_readmes_generated_parts_are_those_the_results_give():
    for rel, blocks in build.generated_parts().items():
        text = open(os.path.join(ROOT, rel), encoding="utf-8").read()
        assert build.with_generated_parts(text, blocks) == text, f"run python report/build.py to update {rel}"
    readme, blocks = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read(), build.generated_parts()["README.md"]
    attn = results("q3/attn-test-greedy.json")
    assert f"CER {attn['cer']:.4f}" in readme.partition("<!-- results:start -->")[2].partition("<!-- results:end -->")[0]
    stale = readme.replace(f"CER {attn['cer']:.4f}", "CER 0.9999", 1)
    assert stale != readme and build.with_generated_parts(stale, blocks) == readme  # a stale number is put right
    with pytest.raises(InputError, match="the markers <!-- results:start -->"):
        build.with_generated_parts(readme.replace("<!-- results:start -->", ""), blocks)


def field_names(record):
    """A record's fields, with those of its config and history: 'config.seed', 'history.val_acc'."""
    return {k for k in record} | {f"{k}.{sub}" for k in ("config", "history") if isinstance(record.get(k), dict)
                                  for sub in record[k]}


def test_every_record_not_frozen_has_the_fields_its_writer_writes_today(tmp_path):
    """Tiny runs of hw2-q2.py (both networks) and hw2-q3.py (train, test greedy and top-p) give today's
    fields; each committed record they write, unless frozen with its reason, holds exactly those."""
    npz = intel_npz(tmp_path / "intel.npz")
    for flags in ([], ["-no_batch_norm"]):
        assert call_main("hw2-q2.py", "-data_path", npz, "-epochs", "1", "-out_dir", "q2", *flags, cwd=tmp_path)[0] == 0
    write_corpus(tmp_path / "data")
    q3 = ["--data_dir", "data", "--out_dir", "q3", "--checkpoint_name", "attn.pt"]
    for args in (["train", "--use_attn", "--n_epochs", "1", "--hidden_size", "8"], ["test"], ["test", "--topp", "0.8"]):
        assert call_main("hw2-q3.py", *args, *q3, cwd=tmp_path)[0] == 0
    today = {"q2-bn": "q2/cnn-bn-lr0.01.json", "q2-vanilla": "q2/cnn-vanilla-lr0.01.json", "train": "q3/attn-train.json",
             "greedy": "q3/attn-test-greedy.json", "topp": "q3/attn-test-topp0.8.json"}
    today = {kind: field_names(json.loads((tmp_path / rel).read_text())) for kind, rel in today.items()}
    stale = []
    for entry in build.manifest():
        command, name = entry["command"] or "", entry["file"]
        kind = ("q2-vanilla" if "-no_batch_norm" in command else "q2-bn") if name.startswith("q2/cnn-") else (
            "train" if command.startswith("python hw2-q3.py train") else
            "topp" if "hw2-q3.py test" in command and "--topp" in command else
            "greedy" if "hw2-q3.py test" in command else None)
        if kind and name.endswith(".json") and not entry.get("frozen"):
            if field_names(results(name)) != today[kind]:
                stale.append(name)
    assert not stale
