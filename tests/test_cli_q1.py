"""q1_hopfield.py as a user runs it: every claim passes, each check prints its
tolerance, and the run reproduces the committed results/q1/hopfield.json (so it leaves it unchanged)."""
import json
import os
import shutil

from conftest import ROOT, run_script


def test_every_claim_passes_and_the_committed_result_reproduces(tmp_path):
    shutil.copy(os.path.join(ROOT, "results", "q1", "hopfield.json"), tmp_path)
    code, out, err = run_script("q1_hopfield.py", "--out_dir", tmp_path)
    assert code == 0, err
    result = json.loads((tmp_path / "hopfield.json").read_text())
    assert result["all_passed"] and all(c["passed"] for c in result["checks"].values())
    assert "PASS  Hessians are PSD (smallest eigenvalue, zero up to rounding):" in out and ">= -1e-10" in out
    assert "FAIL" not in out and "unchanged" in out.splitlines()[-1] and (tmp_path / "retrieval.pdf").exists()
