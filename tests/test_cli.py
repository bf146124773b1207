"""cli.py: flag numbers finite and in range, devices that exist, one seed for every generator, and
standard input read as UTF-8 lines."""
import argparse
import io
import random
import sys

import numpy as np
import pytest
import torch

import cli


@pytest.mark.parametrize("text, ok", [("0.5", True), ("1", True), ("nan", False), ("inf", False), ("abc", False),
                                      ("0", False), ("1.5", False)])
def test_flag_numbers_are_finite_and_in_range(text, ok):
    check = cli.in_range(float, 0.0, 1.0, low_open=True)
    if ok:
        assert check(text) == float(text)
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            check(text)


@pytest.mark.parametrize("name, message", [("gpu", "'gpu': expected cpu, cuda, cuda:N or auto"),
                                           ("mps", "mps: only cpu and cuda are supported")])
def test_a_device_this_program_cannot_use_is_named_with_its_flag(name, message):
    with pytest.raises(cli.InputError, match=f"--device {message}"):
        cli.get_device(name)


def test_one_seed_sets_python_numpy_and_torch():
    draws = []
    for seed in (7, 7, 8):
        cli.configure_seed(seed)
        draws.append((random.random(), float(np.random.rand()), float(torch.rand(1))))
    assert draws[0] == draws[1] and all(a != b for a, b in zip(draws[0], draws[2]))


def test_standard_input_gives_its_non_empty_lines_without_a_byte_order_mark(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("\ufeffk æ t\n\n  \nd ɔ ɡ\n".encode())))
    assert cli.read_lines([]) == ["k æ t", "d ɔ ɡ"]
    assert cli.read_lines(["m aʊ s"]) == ["m aʊ s"]
