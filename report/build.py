#!/usr/bin/env python
"""Compile report/report.pdf from report/report.typ, reading results/*.json, after checking that
every input is there and complete (at most 10 pages, the appendix starting by page 7); then write
the READMEs' generated parts from the same JSONs.

    python report/build.py [--output report/report.pdf]   # warns while the group files are empty
    python report/build.py --final                        # refuses to build until they are filled
"""
import argparse
import glob
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
    """beyond/README.md's speed table, from the benchmark JSONs and the run records."""
    b3, b2, sweep = load("bench/bench_q3.json"), load("bench/bench_q2.json"), load(
        "q2/sweep-vanilla.json")
    attn, noattn = load("q3/attn-train.json"), load("q3/no-attn-train.json")
    bn = load(f"q2/cnn-bn-lr{sweep['best_learning_rate']:g}.json")
    sweep_hours = sum(load(f"q2/{name}.json")["wall_seconds"] for name in sweep["runs"]) / 3600
    sec, up, ips = b3["seconds"], b3["speedup"], b2["images_per_second"]
    ours = [("as the assignment's run trains", "ours")] + [
        (f"with `--bucket {n}`", f"bucket{n}") for n in b3["buckets"]]
    val_cer = lambda *names: ", ".join(f"{load(f'q3/{n}-train.json')['best_val_cer']:.4f}"
                                       for n in names)
    rows = [
        (f"Q3 training, {attn['config']['n_epochs']} epochs: attention / none",
         f"{attn['wall_seconds'] / 60:.1f} / {noattn['wall_seconds'] / 60:.1f} min"),
        (f"Q2 training, {bn['config']['epochs']} epochs: batch norm / the vanilla sweep of "
         f"{len(sweep['runs'])} rates", f"{bn['wall_seconds'] / 60:.0f} min / {sweep_hours:.1f} h"),
        ("Q3 epoch: training, then greedy decoding of the validation words (`beyond.bench_q3`)",
         "; ".join(f"{sec[k]['epoch']:.1f} s {what} (×{up[k]['epoch']:.1f})" for what, k in ours)
         + f"; {sec['reference']['epoch']:.1f} s for a per-step reference of the same model"),
        ("Q3 beam search per 1,000 words", ", ".join(
            f"beam {k} {v:.2f} s" for k, v in b3["beam_seconds_per_1000_words"].items())),
        (f"Q2 training images/s, batch {b2['batch_size']} (`beyond.bench_q2`): our in-memory "
         "loop (a plain `DataLoader`, channels-last)", "; ".join(
             f"{name} {ips[net + '/ours']:.0f} ({ips[net + '/dataloader']:.0f}, "
             f"{ips[net + '/channels_last']:.0f})"
             for net, name in (("vanilla", "vanilla"), ("bn", "batch norm")))),
        ("best validation CER of seeds 42, 43, 44 with length bucketing off / `--bucket 50` / "
         "`--bucket 4` (seed 42 only)", " / ".join([
             val_cer("attn", "attn-seed43", "attn-seed44"),
             val_cer("attn-bucket50", "attn-bucket50-seed43", "attn-bucket50-seed44"),
             val_cer("attn-bucket4")])),
    ]
    return "\n".join(["| measured on one CPU thread | |", "|---|---|"]
                     + [f"| {what} | {value} |" for what, value in rows])


def readme_times():
    """The README's table of times, from the run records."""
    sweep = load("q2/sweep-vanilla.json")
    bn, vanilla = (load(f"q2/{n}.json") for n in (f"cnn-bn-lr{sweep['best_learning_rate']:g}",
                                                  sweep["best_run"]))
    attn, noattn, topp = (load(f"q3/{n}.json") for n in ("attn-train", "no-attn-train",
                                                         "attn-test-topp0.8"))
    epoch = lambda r: r["wall_seconds"] / len(r["history"]["epoch"])  # training and validation
    sweep_hours = sum(load(f"q2/{name}.json")["wall_seconds"] for name in sweep["runs"]) / 3600
    records = [load_json(p) for p in glob.glob(os.path.join(ROOT, "results", "**", "*.json"),
                                                recursive=True)]
    total = sum(r.get("wall_seconds", 0) + r.get("decode_seconds", 0) for r in records
                if isinstance(r, dict)) / 3600
    rows = [
        ("`python hw2-q3.py train --use_attn`", f"{attn['wall_seconds'] / 60:.1f} min "
         f"({attn['config']['n_epochs']} epochs); without attention "
         f"{noattn['wall_seconds'] / 60:.1f} min"),
        ("`python hw2-q3.py test --topp 0.8`", f"{topp['decode_seconds']:.1f} s of decoding per "
         f"pass over the test words ({1 + topp['k']} passes), after a few seconds of start"),
        ("`python hw2-q2.py -learning_rate 0.01`", f"{bn['wall_seconds'] / 60:.0f} min: "
         f"{bn['config']['epochs']} epochs of {epoch(bn):.0f} s, validation included"),
        ("`python hw2-q2.py -no_batch_norm -sweep 0.1 0.01 0.001`", f"{sweep_hours:.1f} h: "
         f"{len(sweep['runs'])} runs of {vanilla['config']['epochs']} epochs of about "
         f"{epoch(vanilla):.0f} s"),
        ("`./reproduce.sh` (everything, the strongest-model study included)",
         f"about {total:.1f} h"),
    ]
    return "\n".join(["| command | time on one CPU thread (the committed runs) |", "|---|---|"]
                      + [f"| {what} | {value} |" for what, value in rows])


def generated_parts():
    """{file: [(tag, text)]}: the parts of the READMEs that the results give."""
    def spelt(name):
        return "```\n" + read_text(os.path.join(ROOT, "results", "q3", name)).strip() + "\n```"
    spell = ["From `attn.pt`, the assignment's model (`results/q3/attn-spell.txt`):", "",
             spelt("attn-spell.txt"), "",
             "From one member of the strongest ensemble (Appendix D):", "",
             spelt("strongest-spell.txt")]
    return {"README.md": [("results", readme_results()), ("times", readme_times())],
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
