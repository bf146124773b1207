"""Figures: one look for every plot, written through the one writer (PDF for the report, PNG for the
README); and the figures of a Q2 run (curves, confusion matrix, first-block activation maps)."""
import artefacts


def plt_style():
    """Matplotlib with a headless backend and one look for every figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "figure.figsize": (3.3, 2.3), "figure.dpi": 110, "savefig.bbox": "tight",  # the size printed: half a page
        "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,  # wide, so that 8 pt text prints at 8 pt
        "axes.spines.right": False, "font.size": 8, "axes.titlesize": 8, "legend.fontsize": 8,
        "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.frameon": False,
    })
    return plt


def save_figure(fig, stem, png=False, tight=True):
    """Write stem.pdf (for the report) and, with png, stem.png (for the README), each through the one
    writer; return the paths. tight=False keeps the figure's own size (panels of equal size side by side)."""
    plt = plt_style()
    paths = [f"{stem}.pdf"] + ([f"{stem}.png"] if png else [])
    try:
        for p in paths:
            fmt = p.rsplit(".", 1)[1]
            meta = {"CreationDate": None} if fmt == "pdf" else None
            artefacts.atomic_write(p, lambda f: fig.savefig(f, format=fmt, dpi=150 if fmt == "png" else None, metadata=meta,
                                                            bbox_inches="tight" if tight else None))
    finally:
        plt.close(fig)
    return paths


def plot(epochs, plottables, ylabel, stem, title=None, xlabel="Epoch", png=False, legend_loc="best"):
    """One line per entry of plottables {label: values}, against epochs."""
    plt = plt_style()
    fig, ax = plt.subplots()
    for label, values in plottables.items():
        ax.plot(epochs[: len(values)], values, label=label, marker="o", markersize=2.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        ax.set_title(title)
    if len(plottables) > 1:
        ax.legend(loc=legend_loc)
    return save_figure(fig, stem, png=png)


# ---- the figures of a Q2 run -------------------------------------------------------------------------

def confusion_figure(cm, classes, stem, title):
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = plt_style()
    fig, ax = plt.subplots(figsize=(3.3, 3.4))
    ConfusionMatrixDisplay(np.array(cm), display_labels=classes).plot(ax=ax, colorbar=False, cmap="Blues",
                                                                      text_kw={"fontsize": 7.5})
    ax.grid(False)
    ax.set_title(title)
    ax.xaxis.labelpad = 2
    plt.setp(ax.get_xticklabels(), rotation=40, ha="right", rotation_mode="anchor")
    fig.subplots_adjust(left=0.25, right=0.98, bottom=0.24, top=0.88)  # the same frame for every matrix
    return save_figure(fig, stem, tight=False)


def cnn_run_figures(result, classes, stem):
    """Training loss, validation accuracy and test confusion figures of one Q2 run, from its result alone;
    returns the run's title and the paths written."""
    cfg, history = result["config"], result["history"]
    title = f"{'CNN with batch norm' if cfg['batch_norm'] else 'Vanilla CNN'}, lr {cfg['learning_rate']:g}"
    title += " (skeleton's scrambled layout)" if cfg.get("skeleton_layout") else ""
    paths = []
    if history["epoch"]:
        label = f"lr={cfg['learning_rate']:g}"
        if history.get("val_loss"):
            paths += plot(history["epoch"], {"training (mean of batch losses)": history["train_loss"],
                                             "validation": history["val_loss"]}, "Loss", f"{stem}-losses", title=title)
        else:
            paths += plot(history["epoch"], {label: history["train_loss"]}, "Training loss", f"{stem}-train_loss",
                          title=title)
        curves, where = {label: history["val_acc"]}, "best"
        if history.get("val_acc_reestimated_bn"):  # two curves that rise from the lower left: the legend goes right
            curves = {"running averages (eval mode)": history["val_acc"],
                      "re-estimated on the training set": history["val_acc_reestimated_bn"]}
            where = "lower right"
        paths += plot(history["epoch"], curves, "Validation accuracy", f"{stem}-val_acc", title=title, legend_loc=where)
    if result.get("confusion_matrix"):
        paths += confusion_figure(result["confusion_matrix"], classes, f"{stem}-confusion",
                                  f"{title}\nepoch {result['best_epoch']}: test accuracy {result['best_val_test_acc']:.3f}")
    return title, paths


def activation_maps(model, X, y, classes, stem, title, n_images=4, n_maps=8):
    """The first conv block's feature maps (after ReLU, before pooling) of one test image per class."""
    import torch

    plt = plt_style()
    model.eval()
    present = [c for c in range(len(classes)) if (y == c).any()][:n_images]
    idx = torch.tensor([int((y == c).nonzero()[0]) for c in present])
    captured = {}
    hook = model.blocks[0].relu.register_forward_hook(lambda m, i, o: captured.update(a=o.detach().cpu()))
    with torch.inference_mode():
        model(X[idx.to(X.device)])
    hook.remove()
    acts = captured["a"]  # (n_images, 32, 48, 48)
    channels = acts.mean(dim=(0, 2, 3)).argsort(descending=True)[:n_maps]  # the most active maps
    fig, axes = plt.subplots(len(idx), n_maps + 1, figsize=(1.1 * (n_maps + 1), 1.15 * len(idx)), squeeze=False)
    for r in range(len(idx)):
        axes[r, 0].imshow(X[idx[r]].cpu().permute(1, 2, 0).numpy())
        axes[r, 0].set_ylabel(classes[int(y[idx[r]])], fontsize=8)
        for c, ch in enumerate(channels):
            axes[r, c + 1].imshow(acts[r, ch].numpy(), cmap="viridis")
            if r == 0:
                axes[r, c + 1].set_title(f"ch {int(ch)}", fontsize=8)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
    axes[0, 0].set_title("input", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, stem)
