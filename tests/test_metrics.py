"""NAUC and ALC against hand-computed values (AutoDL definitions)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from finetune.metrics import alc, nauc, per_class_auc, transform_time


def test_perfect_and_reversed_predictions():
    y = np.array([0, 1, 0, 1])
    s = np.array([[0.9, 0.1], [0.1, 0.9], [0.8, 0.2], [0.2, 0.8]])
    assert nauc(y, s) == 1.0
    assert nauc(y, s[:, ::-1]) == -1.0


def test_ties_get_half_credit():
    y = np.array([1, 0, 0])
    s = np.column_stack([1 - np.array([0.5, 0.5, 0.2]), [0.5, 0.5, 0.2]])
    # class 1: positive rank 2.5 among (0.2 -> 1, 0.5/0.5 -> 2.5): (2.5 - 1) / (1 * 2) = 0.75
    assert per_class_auc(y, s)[1] == pytest.approx(0.75)
    assert per_class_auc(np.array([0, 0, 1, 1]), np.full((4, 2), 0.5)).tolist() == [0.5, 0.5]


def test_hand_computed_partial_ranking():
    y = np.array([0, 1, 1, 0])
    s1 = np.array([0.1, 0.4, 0.35, 0.8])
    # positives have ranks 3 and 2: (5 - 3) / (2 * 2) = 0.5 for class 1, same for class 0 -> NAUC 0
    assert nauc(y, np.column_stack([1 - s1, s1])) == pytest.approx(0.0)
    y2 = np.array([0, 1, 1, 0, 1])
    s2 = np.array([0.1, 0.9, 0.3, 0.2, 0.8])
    # class 1 positives at ranks 5, 3, 4 -> (12 - 6) / (3 * 2) = 1.0; class 0 the mirror -> NAUC 1
    assert nauc(y2, np.column_stack([1 - s2, s2])) == pytest.approx(1.0)


def test_single_class_columns_are_ignored():
    y = np.array([0, 1, 0, 1])
    s = np.array([[0.9, 0.1, 0.3], [0.1, 0.9, 0.3], [0.8, 0.2, 0.9], [0.2, 0.8, 0.1]])
    aucs = per_class_auc(y, s)
    assert math.isnan(aucs[2]) and nauc(y, s) == 1.0
    with pytest.raises(ValueError, match="undefined"):
        nauc(np.array([0, 0]), np.array([[0.5, 0.5], [0.4, 0.6]]))


def test_one_hot_input_and_shape_errors():
    y = np.array([[1, 0], [0, 1], [1, 0], [0, 1]])
    s = np.array([[0.9, 0.1], [0.1, 0.9], [0.8, 0.2], [0.2, 0.8]])
    assert nauc(y, s) == 1.0
    with pytest.raises(ValueError):
        nauc(np.array([0, 1, 2]), s[:3])
    with pytest.raises(ValueError):
        nauc(np.array([0, 1]), s)


def test_transform_time():
    assert transform_time(0) == 0.0 and transform_time(1200) == pytest.approx(1.0)
    assert transform_time(60) == pytest.approx(math.log(2) / math.log(21))
    assert transform_time(20, 1200, 20) == pytest.approx(math.log(2) / math.log(61))


def test_alc_single_point_held_to_the_end():
    x = math.log(2) / math.log(21)
    assert alc([60], [0.5]) == pytest.approx((1 - x) * 0.5)
    assert alc([], []) == 0.0


def test_alc_step_rule_and_points_past_budget():
    x1, x2 = transform_time(10), transform_time(300)
    expected = (x2 - x1) * 0.2 + (1 - x2) * 0.6
    assert alc([10, 300], [0.2, 0.6]) == pytest.approx(expected)
    assert alc([300, 10], [0.6, 0.2]) == pytest.approx(expected)  # order does not matter
    assert alc([10, 300, 1500], [0.2, 0.6, 1.0]) == pytest.approx(expected)  # nothing counts after T
    assert alc([0], [1.0]) == pytest.approx(1.0)


def test_alc_settable_budget_and_t0():
    x = math.log1p(5 / 20) / math.log1p(100 / 20)
    assert alc([5], [0.8], time_budget=100, t0=20) == pytest.approx((1 - x) * 0.8)
    with pytest.raises(ValueError):
        alc([1, 2], [0.5])
