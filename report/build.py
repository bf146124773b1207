#!/usr/bin/env python
"""Compile report/report.pdf from report/report.typ, reading results/*.json; at most 12 pages.

    python report/build.py [--output report/report.pdf]     # warns while the group files are placeholders
    python report/build.py --final                          # refuses to build until they are filled in
"""
import argparse
import json
import os
import sys

import typst

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "report", "report.typ")
GROUP_FILES = {  # file -> what the group must write there
    os.path.join(ROOT, "report", "group.txt"): "the group number and its members",
    os.path.join(ROOT, "report", "contributions.txt"): "the contributions paragraph (10 points without it)",
}
MAX_PAGES = 12


OPTIONAL = {  # report section -> the result files it needs; the section is left out until they all exist
    "skeleton": ["q2/cnn-vanilla-lr0.01-skeleton_layout.json", "q2/cnn-bn-lr0.01-skeleton_layout.json"],
    "strongest": ["q3/strongest.json", "q3/strongest-ablation.json", "q3/strongest-spell.txt"],
}


def sections():
    """sys.inputs for the report: "1" for each optional section whose results exist."""
    return {k: "1" if all(os.path.exists(os.path.join(ROOT, "results", f)) for f in files) else "0"
            for k, files in OPTIONAL.items()}


def compiled_numbers(inputs):
    """The values the report computed from the JSONs (its <numbers> metadata), page count included."""
    return json.loads(typst.query(SOURCE, "<numbers>", field="value", one=True, root=ROOT, sys_inputs=inputs))


def load(path):
    with open(os.path.join(ROOT, "results", path)) as f:
        return json.load(f)


def readme_results():
    """The README's results table, from the same JSONs as the report."""
    sweep = load("q2/sweep-vanilla.json")
    best = sweep["best_learning_rate"]
    van, bn = load(f"q2/{sweep['best_run']}.json"), load(f"q2/cnn-bn-lr{best:g}.json")
    noattn, attn, topp = (load(f"q3/{n}.json") for n in ("no-attn-test-greedy", "attn-test-greedy",
                                                         "attn-test-topp0.8"))
    beams = [load(f"q3/attn-test-beam{k}.json") for k in (1, 3, 5, 10)]
    hop = load("q1/hopfield.json")
    rows = [
        "| question | result (test set) |", "|---|---|",
        f"| Q1 | {sum(c['passed'] for c in hop['checks'].values())} of {len(hop['checks'])} numeric checks pass |",
        *[f"| Q2.1 vanilla CNN, lr {r['learning_rate']:g} | accuracy: final model {r['final_test_acc']:.4f} · "
          f"best-validation epoch {r['best_val_test_acc']:.4f} (validation {r['best_val_acc']:.4f}) |"
          for r in sweep["table"] if r["final_test_acc"] is not None],
        f"| Q2.2 batch norm + GAP, lr {best:g} | accuracy: final model {bn['final_test_acc']:.4f} · "
        f"best-validation epoch {bn['best_val_test_acc']:.4f} |",
        f"| Q2.3 parameters | vanilla {van['n_params']:,} · batch norm {bn['n_params']:,} |",
        f"| Q3(a) no attention, greedy | CER {noattn['cer']:.4f} · WER {noattn['wer']:.4f} |",
        f"| Q3(b) attention, greedy | CER {attn['cer']:.4f} · WER {attn['wer']:.4f} |",
        f"| Q3(c) attention, top-p {topp['topp']:g} | CER {topp['cer']:.4f} · WER {topp['wer']:.4f} · "
        f"WER@{topp['k']} {topp['wer_at_k']:.4f} |",
        *[f"| beam {b['beam_size']} | CER {b['cer']:.4f} · WER {b['wer']:.4f} · WER@{b['k']} {b['wer_at_k']:.4f} |"
          for b in beams],
    ]
    skeleton = [f"q2/cnn-{k}-lr{best:g}-skeleton_layout.json" for k in ("vanilla", "bn")]
    if all(os.path.exists(os.path.join(ROOT, "results", p)) for p in skeleton):
        for name, path in zip(("vanilla", "batch norm"), skeleton):
            r = load(path)
            rows.append(f"| Q2 {name}, the skeleton's scrambled input layout | accuracy: final model "
                        f"{r['final_test_acc']:.4f} · best-validation epoch {r['best_val_test_acc']:.4f} |")
    if os.path.exists(os.path.join(ROOT, "results", "q3", "strongest.json")):
        st = load("q3/strongest.json")
        earlier = "".join(f"; round {r['round']}'s choice, the test set's first read: WER {r['test_wer']:.4f}"
                          for r in st.get("earlier_test_reads", []))
        rows.append(f"| beyond: strongest P2G model, round {st.get('round', 1)} ({st['headline']}) | "
                    f"CER {st['test_cer']:.4f} · WER {st['test_wer']:.4f} (members' mean "
                    f"{st['seed_mean_test_wer']:.4f}{earlier}) |")
    return "\n".join(rows)


def readme_speed():
    """The README's speed paragraph, from the benchmark and run JSONs."""
    b3, b2 = load("bench/bench_q3.json"), load("bench/bench_q2.json")
    ips = b2["images_per_second"]
    q3_minutes = (load("q3/no-attn-train.json")["wall_seconds"] + load("q3/attn-train.json")["wall_seconds"]) / 60
    return "\n".join([
        f"- Q3 (`bench/bench_q3.py`, {b3['threads']} CPU threads): one epoch (training, then greedy decoding of the "
        f"validation words) takes {b3['seconds']['ours']['epoch']:.1f} s against {b3['seconds']['reference']['epoch']:.1f} s "
        f"for a per-step reference of the same model: ×{b3['speedup']['epoch']:.1f} (training "
        f"×{b3['speedup']['train']:.1f}, since the decoder LSTM runs once over the whole target; decoding "
        f"×{b3['speedup']['decode']:.1f}, since whole batches are decoded with a `finished` mask). Training both "
        f"assignment models took {q3_minutes:.1f} min on one thread.",
        f"- Beam search, per 1,000 words: " + ", ".join(f"beam {k} {v:.2f} s" for k, v in
                                                         b3["beam_seconds_per_1000_words"].items()) + ".",
        f"- Q2 (`bench/bench_q2.py`, batch {b2['batch_size']}, {b2['threads']} threads): the in-memory loop trains "
        f"the vanilla network at {ips['vanilla/ours']:.0f} images/s against {ips['vanilla/dataloader']:.0f} for a plain "
        f"`DataLoader` (batch 8 is compute-bound), the batch-norm network at {ips['bn/ours']:.0f} against "
        f"{ips['bn/dataloader']:.0f}; `-channels_last` reaches {ips['vanilla/channels_last']:.0f} and "
        f"{ips['bn/channels_last']:.0f} images/s but is not bit-identical. A 40-epoch run takes about "
        f"{b2['forty_epoch_minutes']['vanilla']:.0f} min (vanilla) and {b2['forty_epoch_minutes']['bn']:.0f} min "
        f"(batch norm) on 2 threads.",
    ])


def update_readme():
    path = os.path.join(ROOT, "README.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    new = text
    blocks = [("results", readme_results()), ("speed", readme_speed())]
    spell = os.path.join(ROOT, "results", "q3", "strongest-spell.txt")
    if os.path.exists(spell):
        with open(spell, encoding="utf-8") as f:
            blocks.append(("spell", "```\n" + f.read().strip() + "\n```"))
    for tag, body in blocks:
        start, end = f"<!-- {tag}:start -->", f"<!-- {tag}:end -->"
        head, _, rest = new.partition(start)
        _, _, tail = rest.partition(end)
        new = f"{head}{start}\n{body}\n{end}{tail}"
    if new != text:
        with open(path, "w", encoding="utf-8") as f:
            f.write(new)
        print("updated the results table in README.md")


def placeholders():
    """The group files that still hold their placeholder, with what belongs there."""
    out = []
    for path, what in GROUP_FILES.items():
        with open(path, encoding="utf-8") as f:
            if "PLACEHOLDER" in f.read():
                out.append(f"{os.path.relpath(path, ROOT)} ({what})")
    return out


def build(output, final=False):
    missing = placeholders()
    if missing and final:
        print(f"error: --final: still placeholders: {'; '.join(missing)}", file=sys.stderr)
        sys.exit(1)
    for m in missing:
        print("!" * 78 + f"\nWARNING: {m} still holds the placeholder text; fill it in before you submit "
              "(python report/build.py --final refuses to build until then)\n" + "!" * 78, file=sys.stderr)
    inputs = sections()
    for k, v in inputs.items():
        if v != "1":
            print(f"note: the report leaves out its {k} section until {', '.join(OPTIONAL[k])} exist", file=sys.stderr)
    try:
        typst.compile(SOURCE, output=output, root=ROOT, sys_inputs=inputs)
        numbers = compiled_numbers(inputs)
    except Exception as e:  # typst reports a missing JSON file or key here
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"error: report/report.typ does not compile: {first}", file=sys.stderr)
        sys.exit(1)
    if numbers["pages"] > MAX_PAGES:
        print(f"error: the report has {numbers['pages']} pages, more than {MAX_PAGES}", file=sys.stderr)
        sys.exit(1)
    print(f"wrote {os.path.relpath(output, ROOT)} ({numbers['pages']} pages)")
    return numbers


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--output", default=os.path.join(ROOT, "report", "report.pdf"), help="the PDF to write")
    p.add_argument("--no_readme", action="store_true", help="leave README.md's results table as it is")
    p.add_argument("--final", action="store_true", help="refuse to build while report/group.txt or "
                   "report/contributions.txt still holds its placeholder")
    args = p.parse_args()
    build(args.output, final=args.final)
    if not args.no_readme:
        update_readme()


if __name__ == "__main__":
    main()
