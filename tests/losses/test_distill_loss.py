"""The distillation objective: a student equal to its teacher costs nothing, gradients reach the
student only, the teacher stays frozen and exact, and a multi-style teacher's rows are picked per
sample."""

from __future__ import annotations

import pytest
import torch

from reconet.losses.distill import DistillationLoss, gradient_l1
from reconet.models import build_reconet
from reconet.models.reconet import ReCoNetOutput


def pairs(batch: int = 2, size: int = 24):
    generator = torch.Generator().manual_seed(0)
    frame1 = torch.rand(batch, 3, size, size, generator=generator)
    frame2 = torch.rand(batch, 3, size, size, generator=generator)
    flow = torch.zeros(batch, 2, size, size)
    mask = torch.ones(batch, 1, size, size)
    return frame1, frame2, flow, mask


def test_gradient_l1_known_values():
    target = torch.zeros(1, 1, 3, 3)
    assert gradient_l1(target + 0.5, target) == 0  # a constant offset has no gradient
    ramp = torch.arange(3.0).expand(1, 1, 3, 3)  # horizontal steps of 1, vertical 0
    assert gradient_l1(ramp, target) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"\(1, 1, 3, 3\).*\(1, 1, 2, 3\)"):
        gradient_l1(target, target[..., :2, :])


def test_a_student_identical_to_its_teacher_has_zero_distillation_terms():
    teacher = build_reconet("tiny").eval()
    student = build_reconet("tiny").eval()
    student.load_state_dict(teacher.state_dict())
    frame1, frame2, flow, mask = pairs()
    loss = DistillationLoss(teacher, pixel=1.0, gradient=1.0, lambda_f=0.0, lambda_o=0.0)
    result1, result2 = student(frame1), student(frame2)
    terms = loss(frame1, frame2, result1, result2, flow, mask)
    assert float(terms["pixel"]) < 1e-6 and float(terms["gradient"]) < 1e-6
    assert set(terms) == {"pixel", "gradient", "temporal_feature", "temporal_output", "total"}


def test_the_pixel_term_is_the_mean_absolute_difference_summed_over_both_frames():
    teacher = build_reconet("tiny").eval()
    frame1, frame2, flow, mask = pairs()
    with torch.no_grad():
        target1, target2 = teacher(frame1).output, teacher(frame2).output
    shifted = ReCoNetOutput(torch.zeros(2, 96, 6, 6), (target1 + 0.1).clamp(0, 1))
    exact = ReCoNetOutput(torch.zeros(2, 96, 6, 6), target2)
    terms = DistillationLoss(teacher, pixel=2.0, gradient=0.0)(frame1, frame2, shifted, exact, flow, mask)
    expected = 2.0 * ((shifted.output - target1).abs().mean() + 0)  # frame 2 contributes nothing
    torch.testing.assert_close(terms["pixel"], expected, rtol=1e-5, atol=1e-7)


def test_gradients_reach_the_student_only_and_the_teacher_stays_frozen():
    teacher = build_reconet("tiny")
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = build_reconet("fast").train()
    loss = DistillationLoss(teacher, lambda_f=1.0, lambda_o=10.0).train()
    assert not loss.teacher.training and not any(p.requires_grad for p in loss.teacher.parameters())
    frame1, frame2, flow, mask = pairs()
    terms = loss(frame1, frame2, student(frame1), student(frame2), flow, mask)
    terms["total"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())


def test_a_multi_style_teacher_gives_each_sample_its_rows_target():
    teacher = build_reconet("tiny", num_styles=3).eval()
    with torch.no_grad():  # make the rows differ
        for p in teacher.parameters():
            if p.ndim == 2:
                p.add_(torch.randn_like(p) * 0.5)
    loss = DistillationLoss(teacher, [2, 0], names=["c", "a"])
    assert loss.num_styles == 2
    frames = torch.rand(2, 3, 20, 20)
    targets = loss.targets(frames, torch.tensor([0, 1]))  # student row 0 -> teacher row 2, row 1 -> 0
    with torch.no_grad():
        torch.testing.assert_close(targets[0], teacher(frames[:1], style=2).output[0])
        torch.testing.assert_close(targets[1], teacher(frames[1:], style=0).output[0])
    student = build_reconet("fast", num_styles=2)
    frame1, frame2, flow, mask = pairs()
    index = torch.tensor([1, 1])
    style = torch.nn.functional.one_hot(index, 2).float()
    terms = loss(frame1, frame2, student(frame1, style=style), student(frame2, style=style), flow, mask, style_index=index)
    assert "pixel_a" in terms and "pixel_c" not in terms
    with pytest.raises(ValueError, match="style_index must be"):
        loss(frame1, frame2, student(frame1, style=style), student(frame2, style=style), flow, mask)


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(ValueError, match="holds 3 styles: pass teacher_rows"):
        DistillationLoss(build_reconet("tiny", num_styles=3))
    with pytest.raises(ValueError, match=r"teacher_rows \[5\]"):
        DistillationLoss(build_reconet("tiny", num_styles=3), [5])
    with pytest.raises(ValueError, match=">= 0"):
        DistillationLoss(build_reconet("tiny"), pixel=-1.0)


def test_the_compiled_teacher_gives_the_eager_targets_and_adds_no_state():
    teacher = build_reconet("tiny").eval()
    loss = DistillationLoss(teacher, compile_teacher=True)
    keys = set(loss.state_dict())
    frames = torch.rand(2, 3, 32, 32)
    compiled = loss.targets(frames)
    with torch.no_grad():
        torch.testing.assert_close(compiled, teacher(frames).output, rtol=0, atol=1e-5)
    assert set(loss.state_dict()) == keys  # the compiled wrapper is not a submodule
