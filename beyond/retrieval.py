"""Q1's retrieval figure: CCCP updates of a damaged stored digit, at a small and a large beta.

    python -m beyond.retrieval [--out_dir runs/q1]    # retrieval.json and retrieval.pdf
"""
import argparse

import torch

from q1_hopfield import DT, cccp_update
from utils import pyplot, run, save_figure, save_json


def retrieval_demo(gen, stem, betas=(0.02, 1.0), steps=(1, 5)):
    """Memories: one 8x8 digit per class (scikit-learn's bundled digits) scaled to [-1, 1].
    Query: a stored digit with its lower half erased and noise added. Small beta lands on a
    metastable average of the memories, large beta retrieves the single stored pattern."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    first = [int((torch.tensor(digits.target) == c).nonzero()[0]) for c in range(10)]
    X = torch.tensor(digits.data[first]) / 8.0 - 1.0  # (10, 64)
    target = 3
    q0 = X[target].clone()
    q0[32:] = -1.0  # erase the lower half
    q0 = q0 + 0.3 * torch.randn(64, generator=gen, dtype=DT)

    rows = []
    for beta in betas:
        q, states = q0, {}
        for t in range(1, max(steps) + 1):
            q = cccp_update(q, X, beta)
            if t in steps:
                states[t] = q
        p = torch.softmax(beta * (X @ states[max(steps)]), dim=0)
        rows.append({"beta": beta, "states": states, "max_weight": p.max().item(),
                     "error": {t: (s - X[target]).norm().item() for t, s in states.items()},
                     "to_mean": {t: (s - X.mean(0)).norm().item() for t, s in states.items()}})

    fig = pyplot().figure(figsize=(4.0, 2.7))  # printed at this size: its text prints at 8 pt
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 2.2])
    top.suptitle(f"the {len(X)} stored memories")
    for i, ax in enumerate(top.subplots(1, len(X))):
        show_pattern(ax, X[i])
    cols = ["query"] + [f"{t} update{'s' * (t > 1)}" for t in steps] + ["stored"]
    axes = bottom.subplots(len(betas), len(cols))
    for r, row in enumerate(rows):
        for c, img in enumerate([q0] + [row["states"][t] for t in steps] + [X[target]]):
            show_pattern(axes[r, c], img)
            if r == 0:
                axes[r, c].set_title(cols[c])
        axes[r, 0].set_ylabel(rf"$\beta$ = {row['beta']:g}")
    save_figure(fig, stem)
    return [{"beta": r["beta"], "distance_to_stored": {str(t): e for t, e in r["error"].items()},
             "distance_to_mean": {str(t): e for t, e in r["to_mean"].items()},
             "largest_softmax_weight": r["max_weight"], "n_memories": len(X), "side": 8,
             "target_digit": target} for r in rows]


def show_pattern(ax, pattern):
    """One 64-pixel pattern as an 8x8 image, white -1 to black 1, no axes."""
    ax.imshow(pattern.reshape(8, 8).numpy(), cmap="gray_r", vmin=-1, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=42, help="seed of the query's noise")
    p.add_argument("--out_dir", default="runs/q1", help="where retrieval.json and .pdf go")
    args = p.parse_args(argv)
    retrieval = retrieval_demo(torch.Generator().manual_seed(args.seed),
                               f"{args.out_dir}/retrieval")
    for r in retrieval:
        print(f"beta = {r['beta']:g}: distance to the stored digit "
              + ", ".join(f"{d:.3f} after {t}" for t, d in r["distance_to_stored"].items())
              + f"; largest attention weight {r['largest_softmax_weight']:.3f}")
    print("wrote", save_json({"seed": args.seed, "retrieval": retrieval},
                             f"{args.out_dir}/retrieval.json"), f"and {args.out_dir}/retrieval.pdf")
    return 0


if __name__ == "__main__":
    run(main)
