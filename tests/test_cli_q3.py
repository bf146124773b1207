"""hw2-q3.py as a user runs it: train writes its record and names the next command, test needs no flag
the checkpoint knows and writes one JSON per decoding, spell prints the k best spellings, a trial run
leaves the committed runs alone and says why, equivalent paths are one run, and without the course data training
falls back to ISLEX loudly. (Bad input: test_bad_input.py.)"""
import json

import pytest

import metrics
from conftest import run_script, write_corpus


def test_train_writes_its_record_and_names_the_next_command(corpus_dir, tmp_path):
    code, out, err = run_script("hw2-q3.py", "train", "--use_attn", "--hidden_size", "16", "--n_epochs", "2",
                                "--batch_size", "4", "--data_dir", corpus_dir, "--out_dir", "results",
                                "--checkpoint_name", "m.pt", "--quiet", cwd=tmp_path)
    assert code == 0, err
    record = json.loads((tmp_path / "results" / "m-train.json").read_text())
    assert record["history"]["epoch"] == [1, 2] and record["checkpoint"] == "m.pt"
    assert out.splitlines()[-1].endswith("next: python hw2-q3.py test --checkpoint_name m.pt --topp 0.8")


def test_a_model_that_fits_its_words_tests_perfectly_with_the_checkpoint_s_own_settings(tmp_path, device):
    folder = write_corpus(tmp_path / "data")
    common = ["--data_dir", folder, "--checkpoint_name", "tiny.pt", "--device", device]
    code, _, err = run_script("hw2-q3.py", "train", "--use_attn", "--hidden_size", "32", "--lr", "0.02",
                              "--dropout", "0", "--batch_size", "4", "--n_epochs", "60", "--out_dir", "out", "--quiet",
                              *common, cwd=tmp_path)
    assert code == 0, err
    code, out, _ = run_script("hw2-q3.py", "test", *common, "--out_dir", "out", cwd=tmp_path)  # no --use_attn
    assert code == 0 and "Test CER: 0.0000, Test WER: 0.0000" in out
    result = json.loads((tmp_path / "out" / "tiny-test-greedy.json").read_text())
    assert result["cer"] == 0.0 and result["wer_ci"] == [0.0, 0.0] and result["config"]["use_attn"] is True


def test_every_decoding_writes_a_json_whose_scores_are_those_of_its_predictions(trained, corpus_dir, tmp_path):
    _, _, checkpoint = trained
    common = ["--data_dir", corpus_dir, "--out_dir", tmp_path, "--checkpoint_name", checkpoint]
    for flags, decodings in (([], ["greedy"]), (["--topp", "0.8", "--k", "4"], ["topp0.8"]),
                             (["--beam_size", "1", "3"], ["beam1", "beam3"])):
        code, _, err = run_script("hw2-q3.py", "test", *flags, *common)
        assert code == 0, err
        for d in decodings:
            result = json.loads((tmp_path / f"attn-test-{d}.json").read_text())
            preds, golds = [e["pred"] for e in result["examples"]], [e["gold"] for e in result["examples"]]
            assert (result["cer"], result["wer"]) == metrics.cer_wer(preds, golds)
    samples = [e["samples"] for e in json.loads((tmp_path / "attn-test-topp0.8.json").read_text())["examples"]]
    assert {len(s) for s in samples} == {4}


def test_the_default_checkpoints_are_the_assignment_s_names(tmp_path):
    (tmp_path / "attn.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "no-attn.pt").write_bytes(b"not a checkpoint")
    for args, name in ((["test", "--topp", "0.8"], "attn.pt"), (["test"], "no-attn.pt"),
                       (["test", "--use_attn"], "attn.pt"), (["spell", "k æ t"], "attn.pt")):
        code, _, err = run_script("hw2-q3.py", *args, cwd=tmp_path)
        assert code == 2 and f"--checkpoint_name {name}: not a readable checkpoint" in err, (args, err)


def test_test_finds_the_checkpoint_a_trial_run_wrote_when_the_default_is_missing(trained, corpus_dir, tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "attn.pt").write_bytes(trained[2].read_bytes())
    code, out, err = run_script("hw2-q3.py", "test", "--topp", "0.8", "--data_dir", corpus_dir, cwd=tmp_path)
    assert code == 0 and "attn.pt is not here: using runs/attn.pt, which a trial run wrote" in err, err
    assert out.splitlines()[-1] == "wrote results/q3/attn-test-topp0.8.json"


# ---- which run is which: the committed runs stay, equivalent paths are one run ---------------------------

def train(tmp_path, folder, *flags):
    return run_script("hw2-q3.py", "train", "--hidden_size", "16", "--batch_size", "4", "--n_epochs", "1",
                      "--data_dir", folder, "--quiet", *flags, cwd=tmp_path)


@pytest.mark.parametrize("typed", [[], ["--checkpoint_name", "no-attn.pt"]], ids=["default name", "typed name"])
def test_a_trial_run_goes_to_runs_and_leaves_the_committed_run_alone(tmp_path, typed):
    folder = write_corpus(tmp_path / "data")
    assert train(tmp_path, folder)[0] == 0
    committed = {p: (tmp_path / p).read_bytes() for p in ("no-attn.pt", "results/q3/no-attn-train.json")}
    code, out, err = train(tmp_path, folder, "--lr", "0.002", *typed)  # another setting: a trial run
    assert code == 0, err
    notice = next(line for line in out.splitlines() if line.startswith("a trial run:"))
    assert "(lr 0.003 -> 0.002)" in notice and notice.endswith("goes to runs/q3/no-attn-train.json and runs/no-attn.pt")
    assert {p: (tmp_path / p).read_bytes() for p in committed} == committed
    assert json.loads((tmp_path / "runs/q3/no-attn-train.json").read_text())["config"]["lr"] == 0.002
    assert (tmp_path / "runs/no-attn.pt").exists()


def test_equivalent_paths_name_one_run(tmp_path):
    folder = write_corpus(tmp_path / "data")
    assert train(tmp_path, "data")[0] == 0
    before = (tmp_path / "results/q3/no-attn-train.json").read_text()
    code, out, err = train(tmp_path, "./data/", "--checkpoint_name", "./no-attn.pt", "--out_dir", "results/q3/")
    assert code == 0 and "a trial run" not in out and not (tmp_path / "runs").exists(), out + err
    assert "results/q3/no-attn-train.json unchanged (the same run)" in out.splitlines()[-1]
    assert json.loads(before)["config"] == json.loads((tmp_path / "results/q3/no-attn-train.json").read_text())["config"]
    assert folder.exists()


# ---- spell ----------------------------------------------------------------------------------------------

def spellings(line):
    """'k æ t<TAB>cat 0.89<TAB>kat 0.04' -> ('k æ t', [('cat', 0.89), ('kat', 0.04)])."""
    phonemes, *hyps = line.split("\t")
    return phonemes, [(h.rsplit(" ", 1)[0], float(h.rsplit(" ", 1)[1])) for h in hyps]


def test_spell_gives_the_k_best_distinct_spellings_with_falling_probabilities(trained):
    code, out, _ = run_script("hw2-q3.py", "spell", "--checkpoint_name", trained[2], "--k", "3", "k æ t", "d ɔ ɡ")
    assert code == 0 and [spellings(line)[0] for line in out.splitlines()] == ["k æ t", "d ɔ ɡ"]
    for line in out.splitlines():
        hyps = spellings(line)[1]
        probs = [p for _, p in hyps]
        assert len(hyps) == 3 and len({w for w, _ in hyps}) == 3
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-6
    assert spellings(out.splitlines()[0])[1][0][0] == "cat"  # a training word comes first
    code, out, _ = run_script("hw2-q3.py", "spell", "--checkpoint_name", trained[2], "k æ t")
    assert len(spellings(out.splitlines()[0])[1]) == 5  # the default k


def test_spell_reads_standard_input_and_skips_empty_lines(trained):
    code, out, _ = run_script("hw2-q3.py", "spell", "--checkpoint_name", trained[2], "--k", "2",
                              stdin="k æ t\n\n   \nm aʊ s\n".encode())
    assert code == 0 and [spellings(line)[0] for line in out.splitlines()] == ["k æ t", "m aʊ s"]


def test_spell_says_that_unquoted_phonemes_are_words_of_their_own(trained):
    code, out, err = run_script("hw2-q3.py", "spell", "--checkpoint_name", trained[2], "k", "æ", "t")
    assert code == 0 and len(out.splitlines()) == 3
    assert "these are 3 one-phoneme words; to spell one word, quote it: python hw2-q3.py spell 'k æ t'" in err


def test_spell_warns_about_phonemes_it_has_never_seen(trained):
    code, out, err = run_script("hw2-q3.py", "spell", "--checkpoint_name", trained[2], "k æ ʘ t")
    assert code == 0 and "warning" in err and "ʘ" in err and spellings(out.splitlines()[0])[0] == "k æ ʘ t"


def test_without_the_course_data_training_falls_back_to_islex_loudly(tmp_path):
    """Slow: one epoch on the 10,000 ISLEX words."""
    pytest.importorskip("pysle")
    code, out, err = run_script("hw2-q3.py", "train", "--n_epochs", "1", "--hidden_size", "16", "--quiet",
                                cwd=tmp_path)  # no data/train.tsv here
    assert code == 0 and "the course P2G data are missing" in err and "ISLEX" in err
    assert "NOT the course data" in out.splitlines()[-1]  # said again at the end, where it is seen
    record = json.loads((tmp_path / "results" / "q3" / "no-attn-train.json").read_text())
    assert record["config"]["data"].startswith("islex") and (tmp_path / "no-attn.pt").exists()
