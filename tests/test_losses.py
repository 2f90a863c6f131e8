import math

import pytest

torch = pytest.importorskip("torch")

from trainer.losses import DEFOCUS_LOSSES, LossWeights, balanced_bce, bce_iou, masked_l2, soft_iou, total_loss  # noqa: E402
from trainer.model import NetOutputs  # noqa: E402


def _bce(p, y):
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_balanced_bce_matches_hand_computation():
    # One image, 4 pixels: 1 in focus, 3 out of focus -> w_pos = 3/4, w_neg = 1/4.
    target = torch.tensor([1.0, 0.0, 0.0, 0.0]).view(1, 1, 2, 2)
    logits = torch.tensor([0.0, 2.0, -1.0, 0.5]).view(1, 1, 2, 2)
    p = torch.sigmoid(logits).flatten().tolist()
    want = (0.75 * _bce(p[0], 1) + 0.25 * (_bce(p[1], 0) + _bce(p[2], 0) + _bce(p[3], 0))) / 4
    assert balanced_bce(logits, target).item() == pytest.approx(want, rel=1e-6)


def test_balanced_bce_single_class_image_is_half_weighted_bce():
    target = torch.ones(1, 1, 2, 2)
    logits = torch.tensor([0.3, -0.2, 1.0, 0.0]).view(1, 1, 2, 2)
    want = sum(0.5 * _bce(float(torch.sigmoid(v)), 1) for v in logits.flatten()) / 4
    assert balanced_bce(logits, target).item() == pytest.approx(want, rel=1e-6)


def test_balanced_bce_averages_over_images():
    t = torch.tensor([[1.0, 0.0], [0.0, 0.0]]).view(1, 1, 2, 2)
    a, b = torch.randn(1, 1, 2, 2), torch.randn(1, 1, 2, 2)
    both = balanced_bce(torch.cat([a, b]), torch.cat([t, t]))
    assert both.item() == pytest.approx((balanced_bce(a, t) + balanced_bce(b, t)).item() / 2, rel=1e-6)


def test_soft_iou_hand_value_and_empty_masks():
    # p = (0.5, 0.5, 0, 0) against y = (1, 0, 0, 0): inter 0.5, union 1.5 -> 1 - 1.5 / 2.5 with the +1 smoothing.
    logits = torch.tensor([0.0, 0.0, -100.0, -100.0]).view(1, 1, 2, 2)
    target = torch.tensor([1.0, 0.0, 0.0, 0.0]).view(1, 1, 2, 2)
    assert soft_iou(logits, target).item() == pytest.approx(0.4, abs=1e-6)
    # An all-out-of-focus photo predicted as such costs nothing (no 0/0).
    assert soft_iou(torch.full((1, 1, 2, 2), -100.0), torch.zeros(1, 1, 2, 2)).item() == pytest.approx(0.0, abs=1e-6)


def test_bce_iou_is_bce_plus_iou_and_prefers_the_right_map():
    target = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 2, 2)
    right, wrong = (target * 8 - 4), (4 - target * 8)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(right, target)
    assert bce_iou(right, target).item() == pytest.approx((bce + soft_iou(right, target)).item(), rel=1e-6)
    assert bce_iou(right, target).item() < 0.1 < 1.0 < bce_iou(wrong, target).item()


def test_cli_loss_choices_match_the_loss_table():
    from trainer.cli import DefocusLoss

    assert {c.value for c in DefocusLoss} == set(DEFOCUS_LOSSES)


def test_masked_l2_hand_value_and_masked_images_contribute_nothing():
    pred = torch.tensor([[1.0, 3.0], [0.0, 0.0]]).view(2, 1, 1, 2)
    teacher = torch.tensor([[0.0, 1.0], [100.0, 100.0]]).view(2, 1, 1, 2)
    has = torch.tensor([True, False])
    assert masked_l2(pred, teacher, has).item() == pytest.approx((1 + 4) / 2)
    assert masked_l2(pred, teacher, torch.tensor([False, False])).item() == 0.0


def _outputs(d, z):
    return NetOutputs(d, z, tuple(d for _ in range(5)), tuple(z for _ in range(5)))


def test_total_loss_combines_terms_with_alpha_beta_gamma():
    torch.manual_seed(0)
    d, z = torch.randn(2, 1, 4, 4), torch.rand(2, 1, 4, 4)
    mask = (torch.rand(2, 1, 4, 4) > 0.5).float()
    depth, has = torch.rand(2, 1, 4, 4), torch.tensor([True, True])
    w = LossWeights(alpha=0.5, beta=2.0, gamma=0.1)
    terms = total_loss(_outputs(d, z), mask, depth, has, w)
    ld = balanced_bce(d, mask) * (1 + 5 * 0.5)
    lz = masked_l2(z, depth, has) * (1 + 5 * 2.0)
    assert terms.defocus.item() == pytest.approx(ld.item(), rel=1e-6)
    assert terms.depth.item() == pytest.approx(lz.item(), rel=1e-6)
    assert terms.total.item() == pytest.approx((ld + 0.1 * lz).item(), rel=1e-6)
    iou = total_loss(_outputs(d, z), mask, depth, has, LossWeights(alpha=0.5, beta=2.0, gamma=0.1, defocus="bce-iou"))
    assert iou.defocus.item() == pytest.approx((bce_iou(d, mask) * (1 + 5 * 0.5)).item(), rel=1e-6)


def test_depth_term_is_zero_and_gradient_free_where_masked():
    z = torch.randn(1, 1, 4, 4, requires_grad=True)
    d = torch.randn(1, 1, 4, 4)
    terms = total_loss(_outputs(d, z), torch.ones(1, 1, 4, 4), torch.rand(1, 1, 4, 4), torch.tensor([False]))
    assert terms.depth.item() == 0.0
    terms.total.backward()
    assert torch.all(z.grad == 0)
