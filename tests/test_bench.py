"""bench/: the two benchmarks whose records the README's speed section reads run end to end on a tiny
corpus and write the fields it reads; the Adam variant that the README says keeps the weights does."""
import json

from conftest import intel_npz, run_script, write_corpus


def test_bench_q3_times_ours_bucketed_or_not_against_the_reference(tmp_path):
    write_corpus(tmp_path / "data")
    code, out, err = run_script("bench/bench_q3.py", "--repeats", "1", "--beam_sizes", "1", "--out", "q3.json",
                                cwd=tmp_path)
    assert code == 0, err
    record = json.loads((tmp_path / "q3.json").read_text())
    assert set(record["seconds"]) == {"ours", "bucket4", "bucket50", "reference"} and record["buckets"] == [4, 50]
    for name in ("ours", "bucket4", "bucket50"):
        assert record["speedup"][name]["epoch"] == record["seconds"]["reference"]["epoch"] / record["seconds"][name]["epoch"]
    assert record["threads"] == 1 and set(record["beam_seconds_per_1000_words"]) == {"1"}


def test_bench_profile_splits_each_epoch_and_finds_foreach_adam_bit_exact(tmp_path):
    write_corpus(tmp_path / "data")
    intel_npz(tmp_path / "data" / "intel_landscapes.v2.npz")
    code, out, err = run_script("bench/bench_profile.py", "--q2_images", "16", "--out", "profile.json", cwd=tmp_path)
    assert code == 0, err
    record = json.loads((tmp_path / "profile.json").read_text())
    assert [row["task"] for row in record["rows"]] == ["q3", "q3-bucket", "q2"]
    for row in record["rows"]:
        assert abs(sum(row["split_seconds"].values()) - row["seconds"]) < 1e-9
        assert row["gflop"] > 0 and 0 < row["share_of_sgemm"]
    assert {"forward", "backward", "optimizer", "validation decoding", "bookkeeping"} <= set(record["rows"][0]["split_seconds"])
    adam = {row["variant"]: row["same_weights"] for row in record["adam"]}
    assert adam["foreach"]  # what the README says: the same weights, bit for bit
