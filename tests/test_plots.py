"""plots.py: every figure goes through the one writer as a PDF (and, when asked, a PNG) and its paths are
returned; a Q2 run draws the curves it has and no more."""
import pytest

import plots


def test_a_plot_writes_the_pdf_and_the_png_asked_for_and_returns_their_paths(tmp_path):
    stem = str(tmp_path / "curve")
    assert plots.plot([1, 2, 3], {"a": [0.3, 0.2, 0.1]}, "Loss", stem) == [f"{stem}.pdf"]
    assert plots.plot([1, 2, 3], {"a": [0.3, 0.2, 0.1]}, "Loss", stem, png=True) == [f"{stem}.pdf", f"{stem}.png"]
    assert (tmp_path / "curve.pdf").read_bytes().startswith(b"%PDF") and (tmp_path / "curve.png").stat().st_size > 0


def test_the_same_figure_gives_the_same_pdf(tmp_path):  # no date inside: a redrawn figure leaves git clean
    for name in ("a", "b"):
        plots.plot([1, 2], {"x": [1.0, 2.0]}, "y", str(tmp_path / name))
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()


@pytest.mark.parametrize("batch_norm, drawn", [(False, {"train_loss", "val_acc", "confusion"}),
                                               (True, {"losses", "val_acc", "confusion"})])
def test_a_q2_run_draws_its_curves_and_confusion_matrix(tmp_path, batch_norm, drawn):
    history = {"epoch": [1, 2], "train_loss": [1.0, 0.9], "val_acc": [0.3, 0.4]}
    if batch_norm:
        history |= {"val_loss": [1.1, 1.0], "val_acc_reestimated_bn": [0.35, 0.45]}
    result = {"config": {"batch_norm": batch_norm, "learning_rate": 0.01}, "history": history, "best_epoch": 2,
              "best_val_test_acc": 0.4, "confusion_matrix": [[1 if i == j else 0 for j in range(6)] for i in range(6)]}
    _, paths = plots.cnn_run_figures(result, [str(c) for c in range(6)], str(tmp_path / "run"))
    assert {p.stem[len("run-"):] for p in tmp_path.glob("*.pdf")} == drawn
    assert sorted(paths) == sorted(str(p) for p in tmp_path.glob("*.pdf"))  # each figure written is named
