"""The report's builder: check every input the report reads, compile report/report.typ with Typst, and
write the README's generated parts, all from results/*.json. report/build.py is its command line."""
import json
import os
import sys

import typst

import artefacts
from cli import InputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository
SOURCE = os.path.join(ROOT, "report", "report.typ")
GROUP_FILES = {  # file -> what the group must write there
    os.path.join(ROOT, "report", "group.txt"): "the group number and its members",
    os.path.join(ROOT, "report", "contributions.txt"): "the contributions paragraph (10 points without it)",
}
MAX_PAGES, APPENDIX_BY = 11, 9
MANIFEST = os.path.join(ROOT, "results", "manifest.json")


def manifest(path=MANIFEST):
    """The results manifest: [{file, command, fields}], every result the report reads."""
    return artefacts.require(artefacts.load_json(path, "the results manifest"), ["files"], path)[0]


INPUTS = {e["file"]: e["fields"] for e in manifest() if e["file"].endswith(".json")}  # file -> fields read
FILES = [e["file"] for e in manifest() if not e["file"].endswith(".json")]


def check_inputs(results=os.path.join(ROOT, "results")):
    """Every result the report reads exists, is strict JSON and has its fields, and every run it reads
    per epoch ran all its epochs; an InputError names the first file that is not so."""
    for rel, fields in INPUTS.items():
        path = os.path.join(results, rel)
        record = artefacts.load_json(path, "a result the report reads")
        artefacts.require(record, fields, path)
        if "history" in fields and "epoch" in record["history"]:
            want = record["config"].get("epochs", record["config"].get("n_epochs"))
            if len(record["history"]["epoch"]) != want:
                raise InputError(f"{path}: {len(record['history']['epoch'])} epochs recorded, the report reads {want} "
                                 "(a trial run's result? rerun the command the results index gives)")
    for rel in FILES:
        if not os.path.isfile(os.path.join(results, rel)):
            raise InputError(f"{os.path.join(results, rel)}: no such file (a figure or text the report includes)")
    for path in GROUP_FILES:
        read_text(path)


def read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (it holds {GROUP_FILES.get(path, 'text the report reads')})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8; save it as UTF-8") from None


def placeholders():
    """The group files that still hold their placeholder, with what belongs there."""
    return [f"{os.path.relpath(p, ROOT)} ({what})" for p, what in GROUP_FILES.items() if "PLACEHOLDER" in read_text(p)]


def compiled_numbers():
    """What the report's <numbers> metadata says: pages, appendix page, every number printed with num()."""
    return json.loads(typst.query(SOURCE, "<numbers>", field="value", one=True, root=ROOT))


def build(output, final=False):
    check_inputs()
    missing = placeholders()
    if missing and final:
        raise InputError(f"--final: still placeholders: {'; '.join(missing)}")
    for m in missing:
        print(f"WARNING: {m} still holds the placeholder; fill it in before you submit (--final refuses it)",
              file=sys.stderr)
    try:
        pdf = typst.compile(SOURCE, root=ROOT)
        numbers = compiled_numbers()
    except Exception as e:  # a Typst error in the source itself
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"report/report.typ does not compile: {first}") from None
    if numbers["pages"] > MAX_PAGES or numbers["appendix_page"] > APPENDIX_BY:
        raise InputError(f"the report has {numbers['pages']} pages (at most {MAX_PAGES}) and its appendix starts on "
                         f"page {numbers['appendix_page']} (at most {APPENDIX_BY})")
    artefacts.atomic_write(output, lambda f: f.write(pdf))
    print(f"wrote {os.path.relpath(output, ROOT)} ({numbers['pages']} pages)")
    return numbers


def load(rel):
    return artefacts.load_json(os.path.join(ROOT, "results", rel))


def readme_results():
    """The README's results table, from the same JSONs as the report."""
    sweep = load("q2/sweep-vanilla.json")
    best = sweep["best_learning_rate"]
    van, bn = load(f"q2/{sweep['best_run']}.json"), load(f"q2/cnn-bn-lr{best:g}.json")
    noattn, attn, topp = (load(f"q3/{n}.json") for n in ("no-attn-test-greedy", "attn-test-greedy", "attn-test-topp0.8"))
    hop, st = load("q1/hopfield.json"), load("q3/strongest.json")
    ci = lambda r, key, d=3: f"[{r[key][0]:.{d}f}, {r[key][1]:.{d}f}]"
    return "\n".join([
        "| question | result (test set; brackets: 95 % interval) |", "|---|---|",
        f"| Q1 | {sum(c['passed'] for c in hop['checks'].values())} of {len(hop['checks'])} numeric checks pass |",
        f"| Q2.1 vanilla CNN, best learning rate {best:g} | accuracy {van['final_test_acc']:.4f} {ci(van, 'final_test_acc_ci')} |",
        f"| Q2.2 batch norm + global average pooling | accuracy {bn['final_test_acc']:.4f} {ci(bn, 'final_test_acc_ci')} |",
        f"| Q2.3 parameters | vanilla {van['n_params']:,} · batch norm {bn['n_params']:,} |",
        f"| Q3.1(a) no attention, greedy | CER {noattn['cer']:.4f} {ci(noattn, 'cer_ci')} · WER {noattn['wer']:.4f} "
        f"{ci(noattn, 'wer_ci')} |",
        f"| Q3.1(b) attention, greedy | CER {attn['cer']:.4f} {ci(attn, 'cer_ci')} · WER {attn['wer']:.4f} {ci(attn, 'wer_ci')} |",
        f"| Q3.1(c) attention, top-p {topp['topp']:g} | CER {topp['cer']:.4f} · WER {topp['wer']:.4f} · "
        f"WER@{topp['k']} {topp['wer_at_k']:.4f} |",
        f"| beyond: ensemble of {st['choice']['n_models']} P2G models, beam {st['choice']['beam_size']} | "
        f"WER {st['test_wer']:.4f} {ci(st, 'wer_ci')} · CER {st['test_cer']:.4f} |",
    ])


BUCKET_RUNS = {  # the attention model's training records, seeds 42 (43, 44), by --bucket setting
    "off (the assignment's runs)": ("attn-train", "attn-seed43-train", "attn-seed44-train"),
    "`--bucket 50`": ("attn-bucket50-train", "attn-bucket50-seed43-train", "attn-bucket50-seed44-train"),
    "`--bucket 4`": ("attn-bucket4-train",)}


def readme_speed():
    """The README's speed section, from the benchmark JSONs and the run records."""
    minutes = lambda record: record["wall_seconds"] / 60
    attn, noattn = load("q3/attn-train.json"), load("q3/no-attn-train.json")
    sweep = load("q2/sweep-vanilla.json")
    bn = load(f"q2/cnn-bn-lr{sweep['best_learning_rate']:g}.json")
    sweep_hours = sum(minutes(load(f"q2/{name}.json")) for name in sweep["runs"]) / 60
    prof = load("bench/bench_profile.json")
    return "\n".join([
        f"- Training times at the default one thread, as each run recorded them: Q3 with attention "
        f"({attn['config']['n_epochs']} epochs) {minutes(attn):.1f} min, without {minutes(noattn):.1f} min; Q2 "
        f"({bn['config']['epochs']} epochs) the network with batch norm {minutes(bn):.0f} min, the vanilla sweep of "
        f"{len(sweep['runs'])} learning rates {sweep_hours:.1f} h.",
        *profile_table(prof), "", adam_line(prof), bucket_line(), threads_line(load("bench/bench_threads.json")),
        *bench_lines()])


def profile_table(prof):
    """bench_profile's rows as a table: time, FLOPs, share of sgemm and the split by phase."""
    phases = ("forward", "backward", "optimizer", "validation decoding")
    rows = [f"- Where an epoch goes (`bench/bench_profile.py`, {prof['threads']} thread; sgemm reaches "
            f"{prof['sgemm_gflops']:.0f} GFLOP/s on the same thread in the same run):", "",
            "| epoch | seconds | GFLOP | share of sgemm | " + " | ".join(phases) + " | data, metrics, bookkeeping |",
            "|---|" + "---:|" * (4 + len(phases))]
    for row in prof["rows"]:
        split, total = row["split_seconds"], row["seconds"]
        share = lambda t: f"{t / total:.0%}"
        rows.append(f"| {row['label']} | {total:.1f} | {row['gflop']:.0f} | {row['share_of_sgemm']:.0%} | "
                    + " | ".join(share(split[p]) if p in split else "–" for p in phases)
                    + f" | {sum(split.get(p, 0) for p in ('data', 'metrics', 'bookkeeping')) / total:.1%} |")
    return rows


def adam_line(prof):
    """Adam's variants per optimizer step, and whether they keep the committed weights."""
    weights = lambda r: "" if r["variant"] == "default" else f" ({'the same' if r['same_weights'] else 'other'} weights)"
    return ("- Adam on the attention model (`bench/bench_profile.py`, the same run): " + "; ".join(
        f"{r['variant']} {r['ms_per_step']:.1f} ms per step{weights(r)}" for r in prof["adam"]) + ".")


def bucket_line():
    """What --bucket does to the model: the best validation CER of each committed run (bench_q3 times it)."""
    cer = lambda names: ", ".join(f"{load(f'q3/{n}.json')['best_val_cer']:.4f}" for n in names) + \
        (" (seed 42 only)" if len(names) == 1 else "")
    return ("- Length bucketing, opt-in (`hw2-q3.py train --use_attn --bucket N`): best validation CER of seeds "
            "42, 43 and 44 " + "; ".join(f"{name} {cer(names)}" for name, names in BUCKET_RUNS.items()) + ".")


def threads_line(bt):
    """One thread against two, per batch: the median batch and the mean one (what an epoch costs)."""
    ms = lambda r, key, t: r[key][t] * 1000
    parts = [f"{'Q3' if r['task'] == 'q3' else 'Q2'} {r['load']}: median {ms(r, 'seconds_per_batch', '1'):.0f} ms per "
             f"batch on one thread, {ms(r, 'seconds_per_batch', '2'):.0f} on two; mean "
             f"{ms(r, 'mean_seconds_per_batch', '1'):.0f} against {ms(r, 'mean_seconds_per_batch', '2'):.0f}"
             for r in bt["rows"]]
    return f"- One thread against two ({bt['cpu_count']} cores, `bench/bench_threads.py`): " + "; ".join(parts) + "."


def bench_lines():
    """bench_q3 (ours, bucketed or not, against the per-step reference) and bench_q2 (ours against a DataLoader)."""
    b3, b2 = load("bench/bench_q3.json"), load("bench/bench_q2.json")
    ips, sec, up = b2["images_per_second"], b3["seconds"], b3["speedup"]
    threads = lambda b: f"{b['threads']} thread{'s' * (b['threads'] > 1)}"
    ours = [f"{sec['ours']['epoch']:.1f} s as the assignment's run trains (×{up['ours']['epoch']:.1f})"] + [
        f"{sec[f'bucket{n}']['epoch']:.1f} s with `--bucket {n}` (×{up[f'bucket{n}']['epoch']:.1f})" for n in b3["buckets"]]
    return [
        f"- Q3 (`bench/bench_q3.py`, {threads(b3)}, side by side): one epoch (training, then greedy decoding of the "
        f"validation words) takes " + ", ".join(ours) + f", against {sec['reference']['epoch']:.1f} s for a per-step "
        "reference of the same model; beam search per 1,000 words: "
        + ", ".join(f"beam {k} {v:.2f} s" for k, v in b3["beam_seconds_per_1000_words"].items()) + ".",
        f"- Q2 (`bench/bench_q2.py`, batch {b2['batch_size']}, {threads(b2)}): the in-memory loop trains the vanilla "
        f"network at {ips['vanilla/ours']:.0f} images/s against {ips['vanilla/dataloader']:.0f} for a plain "
        f"`DataLoader` ({ips['vanilla/channels_last']:.0f} with `-channels_last`), the batch-norm network at "
        f"{ips['bn/ours']:.0f} against {ips['bn/dataloader']:.0f} ({ips['bn/channels_last']:.0f}).",
    ]


def with_generated_parts(text, path="README.md"):
    """text (the README) with each generated part, between its <!-- tag:start --> and <!-- tag:end -->
    markers, replaced by what the results JSONs give now."""
    spelt = lambda name: "```\n" + read_text(os.path.join(ROOT, "results", "q3", name)).strip() + "\n```"
    blocks = [("results", readme_results()), ("speed", readme_speed()),
              ("spell", "\n".join(["From `attn.pt`, the Quick start's model (`results/q3/attn-spell.txt`):", "",
                                   spelt("attn-spell.txt"), "", "From one member of the strongest ensemble (Appendix D; "
                                   "`strongest.py` trains it in about 160 minutes):", "", spelt("strongest-spell.txt")]))]
    for tag, body in blocks:
        start, end = f"<!-- {tag}:start -->", f"<!-- {tag}:end -->"
        if start not in text or end not in text:
            raise InputError(f"{path}: the markers {start} ... {end} are missing")
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        text = f"{head}{start}\n{body}\n{end}{tail}"
    return text


def update_readme():
    path = os.path.join(ROOT, "README.md")
    text = read_text(path)
    new = with_generated_parts(text, path)
    if new != text:
        artefacts.atomic_write(path, lambda f: f.write(new.encode("utf-8")))
        print("updated the generated parts of README.md")
