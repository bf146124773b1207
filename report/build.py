#!/usr/bin/env python
"""Compile report/report.pdf from report/report.typ, reading results/*.json, after checking that
every input is there and complete (at most 10 pages, the appendix starting by page 7); then write
the READMEs' generated parts from the same JSONs.

    python report/build.py [--output report/report.pdf]   # warns while the group files are empty
    python report/build.py --final                        # refuses to build until they are filled
"""
import argparse
import json
import os
import sys

import typst

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository
sys.path.insert(0, ROOT)
from beyond import load_json  # noqa: E402
from utils import InputError, atomic_write, run  # noqa: E402

SOURCE = os.path.join(ROOT, "report", "report.typ")
GROUP_FILES = {  # file -> what the group must write there
    os.path.join(ROOT, "report", "group.txt"): "the group number and its members",
    os.path.join(ROOT, "report", "contributions.txt"):
        "the contributions paragraph (10 points without it)",
}
MAX_PAGES, APPENDIX_BY = 10, 7  # the answers within 6 pages, the whole within 10
MANIFEST = os.path.join(ROOT, "results", "manifest.json")


def manifest(path=MANIFEST):
    """The results manifest: [{file, command, fields}], every result the report reads."""
    return load_json(path, "files")["files"]


# file -> fields read
INPUTS = {e["file"]: e["fields"] for e in manifest() if e["file"].endswith(".json")}
FILES = [e["file"] for e in manifest() if not e["file"].endswith(".json")]


def check_inputs(results=os.path.join(ROOT, "results")):
    """Every result the report reads exists, is strict JSON and has its fields, and every run it
    reads per epoch ran all its epochs; an InputError names the first file that is not so."""
    for rel, fields in INPUTS.items():
        path = os.path.join(results, rel)
        record = load_json(path, *fields)
        if "history" in fields and "epoch" in record["history"]:
            want = record["config"].get("epochs", record["config"].get("n_epochs"))
            if len(record["history"]["epoch"]) != want:
                raise InputError(f"{path}: {len(record['history']['epoch'])} epochs recorded, "
                                 f"the report reads {want} (rerun the command the results "
                                 "index gives)")
    for rel in FILES:
        if not os.path.isfile(os.path.join(results, rel)):
            raise InputError(f"{os.path.join(results, rel)}: no such file (a figure or text the "
                             "report includes)")
    for path in GROUP_FILES:
        read_text(path)


def read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (it holds "
                         f"{GROUP_FILES.get(path, 'text the report reads')})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8; save it as UTF-8") from None


def placeholders():
    """The group files that still hold their placeholder, with what belongs there."""
    return [f"{os.path.relpath(p, ROOT)} ({what})" for p, what in GROUP_FILES.items()
            if "PLACEHOLDER" in read_text(p)]


def compiled_numbers():
    """What the report's <numbers> metadata says: pages, appendix page, every number printed with
    num()."""
    return json.loads(typst.query(SOURCE, "<numbers>", field="value", one=True, root=ROOT))


def build(output, final=False):
    check_inputs()
    missing = placeholders()
    if missing and final:
        raise InputError(f"--final: still placeholders: {'; '.join(missing)}")
    for m in missing:
        print(f"WARNING: {m} still holds the placeholder; fill it in before you submit "
              "(--final refuses it)", file=sys.stderr)
    try:
        pdf = typst.compile(SOURCE, root=ROOT)
        numbers = compiled_numbers()
    except Exception as e:  # a Typst error in the source itself
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"report/report.typ does not compile: {first}") from None
    if numbers["pages"] > MAX_PAGES or numbers["appendix_page"] > APPENDIX_BY:
        raise InputError(f"the report has {numbers['pages']} pages (at most {MAX_PAGES}) and "
                         f"its appendix starts on page {numbers['appendix_page']} "
                         f"(at most {APPENDIX_BY})")
    atomic_write(output, lambda f: f.write(pdf))
    print(f"wrote {os.path.relpath(output, ROOT)} ({numbers['pages']} pages)")
    return numbers


def load(rel):
    return load_json(os.path.join(ROOT, "results", rel))


def readme_results():
    """The README's results table, from the same JSONs as the report."""
    sweep = load("q2/sweep-vanilla.json")
    best = sweep["best_learning_rate"]
    van, bn = load(f"q2/{sweep['best_run']}.json"), load(f"q2/cnn-bn-lr{best:g}.json")
    noattn, attn, topp = (load(f"q3/{n}.json")
                          for n in ("no-attn-test-greedy", "attn-test-greedy", "attn-test-topp0.8"))
    hop, st = load("q1/hopfield.json"), load("q3/strongest.json")
    ci = lambda r, key, d=3: f"[{r[key][0]:.{d}f}, {r[key][1]:.{d}f}]"
    return "\n".join([
        "| question | result (test set; brackets: 95 % interval) |", "|---|---|",
        f"| Q1 | {sum(c['passed'] for c in hop['checks'].values())} of {len(hop['checks'])} "
        "numeric checks pass |",
        f"| Q2.1 vanilla CNN, best learning rate {best:g} | accuracy {van['final_test_acc']:.4f} "
        f"{ci(van, 'final_test_acc_ci')} |",
        f"| Q2.2 batch norm + global average pooling | accuracy {bn['final_test_acc']:.4f} "
        f"{ci(bn, 'final_test_acc_ci')} |",
        f"| Q2.3 parameters | vanilla {van['n_params']:,} · batch norm {bn['n_params']:,} |",
        f"| Q3.1(a) no attention, greedy | CER {noattn['cer']:.4f} {ci(noattn, 'cer_ci')} · "
        f"WER {noattn['wer']:.4f} {ci(noattn, 'wer_ci')} |",
        f"| Q3.1(b) attention, greedy | CER {attn['cer']:.4f} {ci(attn, 'cer_ci')} · "
        f"WER {attn['wer']:.4f} {ci(attn, 'wer_ci')} |",
        f"| Q3.1(c) attention, top-p {topp['topp']:g} | CER {topp['cer']:.4f} · "
        f"WER {topp['wer']:.4f} · WER@{topp['k']} {topp['wer_at_k']:.4f} |",
        f"| beyond: ensemble of {st['choice']['n_models']} P2G models, "
        f"beam {st['choice']['beam_size']} | WER {st['test_wer']:.4f} {ci(st, 'wer_ci')} · "
        f"CER {st['test_cer']:.4f} |",
    ])


def readme_speed():
    """beyond/README.md's speed section, from the benchmark JSONs and the run records."""
    minutes = lambda record: record["wall_seconds"] / 60
    attn, noattn = load("q3/attn-train.json"), load("q3/no-attn-train.json")
    sweep = load("q2/sweep-vanilla.json")
    bn = load(f"q2/cnn-bn-lr{sweep['best_learning_rate']:g}.json")
    sweep_hours = sum(minutes(load(f"q2/{name}.json")) for name in sweep["runs"]) / 60
    return "\n".join([
        f"- Training times on one thread, as each run recorded them: Q3 with attention "
        f"({attn['config']['n_epochs']} epochs) {minutes(attn):.1f} min, without "
        f"{minutes(noattn):.1f} min; Q2 ({bn['config']['epochs']} epochs) the network with batch "
        f"norm {minutes(bn):.0f} min, the vanilla sweep of {len(sweep['runs'])} learning rates "
        f"{sweep_hours:.1f} h.",
        bucket_line(), *bench_lines()])


BUCKET_RUNS = {  # the attention model's training records, seeds 42 (43, 44), by --bucket setting
    "off (the assignment's runs)": ("attn-train", "attn-seed43-train", "attn-seed44-train"),
    "`--bucket 50`": ("attn-bucket50-train", "attn-bucket50-seed43-train",
                      "attn-bucket50-seed44-train"),
    "`--bucket 4`": ("attn-bucket4-train",)}


def bucket_line():
    """What --bucket does to the model: the best validation CER of each committed run."""
    def cer(names):
        scores = ", ".join(f"{load(f'q3/{n}.json')['best_val_cer']:.4f}" for n in names)
        return scores + (" (seed 42 only)" if len(names) == 1 else "")
    return ("- Length bucketing (`python -m beyond.train --use_attn --bucket N`): best validation "
            "CER of seeds 42, 43 and 44 "
            + "; ".join(f"{name} {cer(names)}" for name, names in BUCKET_RUNS.items()) + ".")


def bench_lines():
    """bench_q3 (ours, bucketed or not, against the per-step reference) and bench_q2 (ours
    against a DataLoader)."""
    b3, b2 = load("bench/bench_q3.json"), load("bench/bench_q2.json")
    ips, sec, up = b2["images_per_second"], b3["seconds"], b3["speedup"]
    threads = lambda b: f"{b['threads']} thread{'s' * (b['threads'] > 1)}"
    ours = [f"{sec['ours']['epoch']:.1f} s as the assignment's run trains "
            f"(×{up['ours']['epoch']:.1f})"]
    ours += [f"{sec[f'bucket{n}']['epoch']:.1f} s with `--bucket {n}` "
             f"(×{up[f'bucket{n}']['epoch']:.1f})" for n in b3["buckets"]]
    beams = ", ".join(f"beam {k} {v:.2f} s" for k, v in b3["beam_seconds_per_1000_words"].items())
    return [
        f"- Q3 (`beyond.bench_q3`, {threads(b3)}, side by side): one epoch (training, then greedy "
        f"decoding of the validation words) takes {', '.join(ours)}, against "
        f"{sec['reference']['epoch']:.1f} s for a per-step reference of the same model; beam "
        f"search per 1,000 words: {beams}.",
        f"- Q2 (`beyond.bench_q2`, batch {b2['batch_size']}, {threads(b2)}): the in-memory loop "
        f"trains the vanilla network at {ips['vanilla/ours']:.0f} images/s against "
        f"{ips['vanilla/dataloader']:.0f} for a plain `DataLoader` "
        f"({ips['vanilla/channels_last']:.0f} in the channels-last layout), the batch-norm "
        f"network at {ips['bn/ours']:.0f} against {ips['bn/dataloader']:.0f} "
        f"({ips['bn/channels_last']:.0f}).",
    ]


def generated_parts():
    """{file: [(tag, text)]}: the parts of the READMEs that the results give."""
    def spelt(name):
        return "```\n" + read_text(os.path.join(ROOT, "results", "q3", name)).strip() + "\n```"
    spell = ["From `attn.pt`, the assignment's model (`results/q3/attn-spell.txt`):", "",
             spelt("attn-spell.txt"), "",
             "From one member of the strongest ensemble (Appendix D):", "",
             spelt("strongest-spell.txt")]
    return {"README.md": [("results", readme_results())],
            "beyond/README.md": [("speed", readme_speed()), ("spell", "\n".join(spell))]}


def with_generated_parts(text, blocks, path="README.md"):
    """text with each block (tag, body), between its <!-- tag:start --> and <!-- tag:end -->
    markers, replaced by body."""
    for tag, body in blocks:
        start, end = f"<!-- {tag}:start -->", f"<!-- {tag}:end -->"
        if start not in text or end not in text:
            raise InputError(f"{path}: the markers {start} ... {end} are missing")
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        text = f"{head}{start}\n{body}\n{end}{tail}"
    return text


def update_readme():
    for rel, blocks in generated_parts().items():
        path = os.path.join(ROOT, rel)
        text = read_text(path)
        new = with_generated_parts(text, blocks, path)
        if new != text:
            atomic_write(path, lambda f: f.write(new.encode("utf-8")))
            print(f"updated the generated parts of {rel}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default=os.path.join(ROOT, "report", "report.pdf"),
                   help="the PDF to write")
    p.add_argument("--no_readme", action="store_true",
                   help="leave README.md's generated parts as they are")
    p.add_argument("--final", action="store_true", help="refuse to build while report/group.txt or "
                   "report/contributions.txt still holds its placeholder")
    args = p.parse_args(argv)
    build(args.output, final=args.final)
    if not args.no_readme:
        update_readme()
    return 0


if __name__ == "__main__":
    run(main)
