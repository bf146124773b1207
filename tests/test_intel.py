"""intel.py: the three layouts an Intel .npz may hold give the same tensors, the course's file has the
documented sizes, and the skeleton's reshape is the scrambled view it is said to be. (Damaged files: the
bad-input table.)"""
import numpy as np
import torch

import intel
from conftest import course_file, intel_npz


def test_three_layouts_give_identical_tensors(tmp_path):
    nhwc = dict(np.load(intel_npz(tmp_path / "nhwc.npz")))
    nchw = {k: v.transpose(0, 3, 1, 2) if k.endswith("images") else v for k, v in nhwc.items()}
    flat = {k: v.reshape(len(v), -1) if k.endswith("images") else v for k, v in nchw.items()}
    for name, arrays in (("nchw", nchw), ("flat", flat)):
        np.savez(tmp_path / f"{name}.npz", **arrays)
    loaded = [intel.load(str(tmp_path / f"{name}.npz"), verbose=False) for name in ("nhwc", "nchw", "flat")]
    for split in ("train", "dev", "test"):
        X, y = loaded[0][split]
        assert X.shape[1:] == (3, 48, 48) and X.dtype == torch.float32 and y.dtype == torch.long and y.dim() == 1
        torch.testing.assert_close(X[0, :, 0, 0], torch.tensor(nhwc[f"{intel.SPLITS[split]}_images"][0, 0, 0] / 255,
                                                                dtype=torch.float32))
        for other in loaded[1:]:
            torch.testing.assert_close(other[split][0], X)
            assert torch.equal(other[split][1], y)


def test_the_course_file_has_the_documented_sizes():
    data = intel.load(course_file("intel_landscapes.v2.npz"), verbose=False)
    assert [len(data[s][1]) for s in ("train", "dev", "test")] == [12_630, 1_404, 3_000]
    assert data["train"][0].shape[1:] == (3, 48, 48)


def test_the_skeleton_view_is_the_course_reshape_of_channel_last_images():
    nhwc = np.arange(2 * 48 * 48 * 3).reshape(2, 48, 48, 3)
    ours = torch.from_numpy(nhwc.transpose(0, 3, 1, 2).copy())
    skeleton = torch.from_numpy(nhwc.reshape(2, -1)).reshape(2, 3, 48, -1)  # the skeleton's load + forward
    assert torch.equal(intel.skeleton_view(ours), skeleton) and not torch.equal(skeleton, ours)
