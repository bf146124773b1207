"""Check your own solution: the reference's contract, run on a student's files in the skeleton's
layout (hw2-q2.py, and/or models.py with hw2-q3.py and data.py), question by question.

    python -m beyond.check FOLDER [--json FILE] [--no_smoke]

One line per check: PASS, FAIL or SKIP, the question, what is checked; for a FAIL, what was found
and the sentence of the assignment the check rests on. The student's code runs in processes of its
own (beyond/check_probes.py, then hw2-q3.py train for the smoke runs): a crash or a hang is that
check's failure. Exit status 0 when every check present passes.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from beyond import check_probes, load_json, q2
from utils import InputError, in_range, run, save_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBES = os.path.join(ROOT, "beyond", "check_probes.py")
SMOKE = {  # id -> (question, flags, what is checked): our driver, the student's models.py
    "smoke_no_attn": ("Q3.1(a)", [], "smoke run, no attention: under our hw2-q3.py two short "
                      "epochs lower the loss, then test --topp 0.8 decodes"),
    "smoke_attn": ("Q3.1(b)", ["--use_attn"], "smoke run, attention: under our hw2-q3.py two short "
                   "epochs lower the loss, then test --topp 0.8 decodes"),
}
SMOKE_RESTS_ON = "train the model for 20 epochs using a learning rate of 0.003 [...]"
# the student's processes: headless figures, and only their folder (or our copy) on the path
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"MPLBACKEND": "Agg"}
SMOKE_WORDS = {"train": 256, "valid": 64, "test": 64}  # the first words of each split


def reference():
    """What the probes compare with: our CNNs' layers, and the cost of the skeleton's reshape
    that our records measure (Appendix A)."""
    tables = {name: check_probes.layer_table(q2.CNN(0.1, batch_norm=bn))
              for name, bn in (("vanilla", False), ("bn", True))}
    costs = []
    for net, name in (("vanilla", "vanilla"), ("bn", "batch norm")):
        paths = [os.path.join(ROOT, "results", "q2", f"cnn-{net}-lr0.01{tag}.json")
                 for tag in ("", "-skeleton_layout")]
        if all(os.path.isfile(p) for p in paths):
            plain, mixed = (load_json(p, "final_test_acc")["final_test_acc"] for p in paths)
            costs.append(f"{name} {100 * (plain - mixed):.1f}")
    cost = f" (our records: {' and '.join(costs)} points of test accuracy)" if costs else ""
    return {"tables": tables, "layout_cost": cost}


def probe(jobs, ref, timeout):
    """{(folder, check): (status, found)} of the jobs [(folder, group)], run in the student's
    process: a job that crashes or hangs fails its remaining checks, and the next job runs in a
    new process."""
    results, todo = {}, [list(job) for job in jobs]
    while todo:
        task = json.dumps({"reference": ref, "jobs": todo})
        try:
            proc = subprocess.run([sys.executable, PROBES, task], cwd=todo[0][0], env=CHILD_ENV,
                                  capture_output=True, text=True, timeout=timeout)
            out, err, why = proc.stdout, proc.stderr, None
        except subprocess.TimeoutExpired as e:
            out, err = ((s or b"").decode(errors="replace") for s in (e.stdout, e.stderr))
            why = f"timed out after {timeout} s"
        begun, ended = [], []
        for line in out.splitlines():
            if line.startswith(check_probes.MARK):
                record = json.loads(line[len(check_probes.MARK):])
                begun += [record["begin"]] if "begin" in record else []
                ended += [record["end"]] if "end" in record else []
                if "check" in record:
                    results[record["folder"], record["check"]] = (record["status"], record["found"])
        why = why or "the student's code stopped the process: " + (
            err.strip().splitlines() or ["no message"])[-1][:200]
        stopped = [job for job in begun if job not in ended] or todo[:1]  # a job, or the first
        for folder, group in stopped:
            for check, (where, *_) in check_probes.CHECKS.items():
                if where == group and (folder, check) not in results:
                    results[folder, check] = ("FAIL", why)
        todo = [job for job in todo if job not in begun + stopped]
    return results


def smoke(folder, flags, timeout, data_dir=os.path.join(ROOT, "data")):
    """(status, found) of our hw2-q3.py with the student's models.py, on the first words of
    data_dir: two short epochs whose loss falls, then test with nucleus sampling."""
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("hw2-q3.py", "data.py", "utils.py"):
            shutil.copy(os.path.join(ROOT, name), tmp)
        shutil.copy(os.path.join(folder, "models.py"), tmp)
        os.makedirs(os.path.join(tmp, "data"))
        for split, n in SMOKE_WORDS.items():
            with open(os.path.join(data_dir, f"{split}.tsv"), encoding="utf-8") as f:
                lines = f.readlines()[:n]
            with open(os.path.join(tmp, "data", f"{split}.tsv"), "w", encoding="utf-8") as f:
                f.writelines(lines)
        for mode in (["train", *flags, "--n_epochs", "2", "--hidden_size", "32", "--batch_size",
                      "32"], ["test", "--topp", "0.8"]):
            try:
                proc = subprocess.run(
                    [sys.executable, "hw2-q3.py", *mode, "--out_dir", "out", "--checkpoint_name",
                     "m.pt"], cwd=tmp, capture_output=True, text=True, timeout=timeout,
                    env=CHILD_ENV)
            except subprocess.TimeoutExpired:
                return "FAIL", f"{mode[0]} timed out after {timeout} s"
            if proc.returncode != 0:
                return "FAIL", f"{mode[0]}: " + (
                    proc.stderr.strip().splitlines() or ["no message"])[-1][:200]
        with open(os.path.join(tmp, "out", "m-train.json"), encoding="utf-8") as f:
            losses = json.load(f)["history"]["train_loss"]
    if len(losses) != 2 or not losses[1] < losses[0]:
        return "FAIL", f"training losses {losses}: expected two, the second lower"
    return "PASS", ""


def checks(folder, timeout, with_smoke=True):
    """[{check, question, what, status, found, rests_on}] of every check, in order."""
    present = {g for g, name in check_probes.FILES.items()
               if os.path.isfile(os.path.join(folder, name))}
    results = probe([(folder, g) for g in sorted(present)], reference(), timeout)
    rows = []
    for check, (group, question, what, rests_on) in check_probes.CHECKS.items():
        status, found = results.get((folder, check), ("SKIP", f"no {check_probes.FILES[group]}"))
        rows.append(dict(check=check, question=question, what=what, status=status, found=found,
                         rests_on=rests_on))
    have_data = os.path.isfile(os.path.join(ROOT, "data", "train.tsv"))
    for check, (question, flags, what) in SMOKE.items():
        if "Q3a" not in present or not with_smoke or not have_data:
            status, found = "SKIP", ("no models.py" if "Q3a" not in present else "--no_smoke"
                                     if not with_smoke else "no data/train.tsv in the reference")
        else:
            status, found = smoke(folder, flags, timeout)
        rows.append(dict(check=check, question=question, what=what, status=status, found=found,
                         rests_on=SMOKE_RESTS_ON))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", nargs="?", default=".", help="the student's files (default: .)")
    p.add_argument("--json", default=None, help="also write the checks to this JSON file")
    p.add_argument("--timeout", type=in_range(int, 1), default=300,
                   help="seconds the student's code may take per process")
    p.add_argument("--no_smoke", action="store_true", help="skip the two short training runs")
    args = p.parse_args(argv)
    folder = os.path.abspath(args.folder)
    if not os.path.isdir(folder):
        raise InputError(f"{args.folder}: no such folder")
    rows = checks(folder, args.timeout, with_smoke=not args.no_smoke)
    for r in rows:
        print(f"{r['status']:<4}  {r['question']:<8} {r['what']}")
        if r["status"] == "FAIL":
            print(f"{'':14}found: {r['found']}\n{'':14}rests on: \"{r['rests_on']}\"")
    count = {s: sum(r["status"] == s for r in rows) for s in ("PASS", "FAIL", "SKIP")}
    print(f"{count['PASS']} passed, {count['FAIL']} failed, {count['SKIP']} skipped")
    if args.json:
        save_json({"folder": folder, "counts": count, "checks": rows}, args.json)
    return 1 if count["FAIL"] else 0


if __name__ == "__main__":
    run(main)
