import numpy as np
import pytest

from runtime.metrics import ScoreAccumulator, adaptive_threshold, curve_counts, f_beta, mae, precision_recall, score_image


def _mask():
    m = np.zeros((4, 5), bool)
    m[1:3, 1:4] = True  # 6 of 20 pixels in focus
    return m


def test_perfect_map():
    m = _mask()
    s = score_image(m.astype(float), m)
    assert s.mae == 0 and s.precision == 1 and s.recall == 1 and s.f_beta == pytest.approx(1)


def test_inverted_map():
    m = _mask()
    s = score_image((~m).astype(float), m)
    assert s.mae == 1
    assert s.precision == 0 and s.recall == 0 and s.f_beta == 0


def test_constant_map_predicts_nothing_at_adaptive_threshold():
    m = _mask()
    pred = np.full(m.shape, 0.5)
    assert adaptive_threshold(pred) == pytest.approx(0.75)
    s = score_image(pred, m)
    assert s.mae == pytest.approx(0.5, abs=1 / 255)  # scored at 8 bits: 0.5 is saved as 128
    assert (s.precision, s.recall, s.f_beta) == (0.0, 0.0, 0.0)


def test_empty_mask():
    m = np.zeros((3, 3), bool)
    assert precision_recall(np.zeros_like(m), m) == (1.0, 1.0)
    assert precision_recall(np.ones_like(m), m) == (0.0, 1.0)
    assert mae(np.zeros((3, 3)), m) == 0


def test_hand_computed_partial_map():
    m = _mask()
    pred = np.zeros(m.shape)
    pred[1, 1:4] = 0.9  # 3 true positives
    pred[0, 0] = 0.9  # 1 false positive
    # mean = 3.6/20 = 0.18, threshold 0.27 -> 4 predicted, P = 3/4, R = 3/6.
    s = score_image(pred, m)
    assert (s.precision, s.recall) == (0.75, 0.5)
    assert s.f_beta == pytest.approx(1.3 * 0.75 * 0.5 / (0.3 * 0.75 + 0.5))
    q = 230 / 255  # 0.9 as saved at 8 bits
    assert s.mae == pytest.approx((3 * (1 - q) + q + 3 * 1.0) / 20)


def test_curve_counts_agree_with_direct_thresholding():
    rng = np.random.default_rng(0)
    pred, m = rng.random((16, 16)), rng.random((16, 16)) > 0.6
    cp, cr = curve_counts(pred, m)
    for t in (1, 77, 128, 255):
        p, r = precision_recall(np.rint(pred * 255) >= t, m)
        assert (cp[t - 1], cr[t - 1]) == pytest.approx((p, r))


def test_dataset_f_from_mean_precision_recall_differs_from_mean_f():
    m = _mask()
    good, half = m.astype(float), np.where(m, 0.9, 0.0)
    half[0, :] = 0.9  # adds 5 false positives
    acc = ScoreAccumulator()
    a, b = acc.add(good, m), acc.add(half, m)
    s = acc.summary()
    assert s.precision == pytest.approx((a.precision + b.precision) / 2)
    assert s.f_beta == pytest.approx(f_beta(s.precision, s.recall))
    assert s.f_beta_mean == pytest.approx((a.f_beta + b.f_beta) / 2)
    assert s.f_beta != pytest.approx(s.f_beta_mean)
    # No threshold separates the second map's false positives (all 0.9, like its hits): best is
    # mean P = (1 + 6/11) / 2, mean R = 1.
    p = (1 + 6 / 11) / 2
    assert s.max_f == pytest.approx(1.3 * p / (0.3 * p + 1))


def test_confident_map_of_a_large_region_is_scored_as_its_saved_png():
    # 80 % in focus, predicted at 0.999: the mean is 0.8, so the threshold caps at 1. The saved 8-bit
    # map holds 255 there, so every in-focus pixel passes and F is 1 (a float compare would give 0).
    mask = np.zeros((10, 10), bool)
    mask[:8] = True
    pred = np.where(mask, 0.999, 0.0)
    s = score_image(pred, mask)
    assert (s.precision, s.recall) == (1.0, 1.0)
    assert s.f_beta == pytest.approx(1.0)
    assert s.mae == pytest.approx(0.0)


def test_blurred_class_f_beta_at_a_fixed_threshold():
    from runtime.metrics import blurred_f_beta

    mask = np.zeros((4, 4), bool)
    mask[:, :2] = True  # left half in focus, right half blurred
    perfect = mask.astype(np.float32)
    assert blurred_f_beta(perfect, mask) == pytest.approx(1.0)
    assert blurred_f_beta(1 - perfect, mask) == pytest.approx(0.0)
    half = perfect.copy()
    half[:2, 2:] = 0.9  # half the blurred pixels called in focus: precision 1, recall 0.5
    assert blurred_f_beta(half, mask) == pytest.approx(1.3 * 0.5 / (0.3 + 0.5))
