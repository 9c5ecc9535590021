"""Tuned convolution kernels: same numbers as the network's own layers, only faster."""

from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reconet.inference import accelerate as acc
from reconet.models import build_reconet


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    ("c_in", "c_out", "kernel", "stride", "padding"),
    [(3, 8, 9, 1, 0), (8, 3, 9, 1, 4), (8, 8, 3, 1, 1), (8, 16, 3, 2, 0), (5, 7, 1, 1, 0)],
)
def test_every_candidate_kernel_matches_conv2d(c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding)
    tuned = acc.TunedConv2d(conv)
    x = torch.rand(2, c_in, 29, 37)
    expected = conv(x).detach()
    kernels = tuned.candidates(x)
    assert "nchw" in kernels and "channels_last" in kernels
    if stride == 1 and acc.nnpack_available():
        assert "nnpack" in kernels
    for name, run in kernels.items():
        got = run(x)
        assert got.is_contiguous(), name
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4, msg=name)
    out = tuned(x)
    assert set(tuned.choices.values()) <= set(kernels)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


def test_accelerated_reconet_matches_the_original_on_odd_frames() -> None:
    torch.manual_seed(0)
    model = build_reconet("tiny").eval()
    fast = acc.accelerate(model)
    assert any(isinstance(m, acc.TunedConv2d) for m in fast.modules())
    assert not any(isinstance(m, acc.TunedConv2d) for m in model.modules())  # original untouched
    for shape in [(1, 3, 45, 61), (2, 3, 32, 40)]:
        x = torch.rand(shape)
        with torch.no_grad():
            torch.testing.assert_close(fast(x).output, model(x).output, rtol=0, atol=1e-4)
    report = acc.tuning_report(fast)
    assert all(len(choices) == 2 for choices in report.values())  # one choice per input shape


def test_freeze_keeps_the_chosen_kernel() -> None:
    torch.manual_seed(0)
    fast = acc.accelerate(build_reconet("tiny").eval())
    x = torch.rand(1, 3, 36, 44)
    with torch.no_grad():
        before = fast(x).output
    acc.freeze(fast)
    convs = [m for m in fast.modules() if isinstance(m, acc.TunedConv2d)]
    assert all(m.fixed == next(iter(m.choices.values())) for m in convs)
    with torch.no_grad():
        torch.testing.assert_close(fast(x).output, before)


def test_freeze_needs_a_tuned_shape() -> None:
    fast = acc.accelerate(build_reconet("tiny").eval())
    with pytest.raises(RuntimeError, match="exactly one tuned kernel"):
        acc.freeze(fast)


@pytest.mark.skipif(not acc.nnpack_available(), reason="PyTorch built without NNPACK")
def test_nnpack_op_has_a_shape_function_for_compile() -> None:
    x = torch.rand(1, 4, 12, 15)
    w = torch.rand(6, 4, 3, 3)
    b = torch.rand(6)
    real = acc.nnpack_conv2d(x, w, b, [1, 1])
    torch.testing.assert_close(real, F.conv2d(x, w, b, padding=1), rtol=1e-4, atol=1e-4)
    fake = acc._nnpack_conv2d_shape(x, w, b, [1, 1])
    assert fake.shape == real.shape == (1, 6, 12, 15)
