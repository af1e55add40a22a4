"""Weight averaging for a digit stage (`python -m training digit --average N`)."""

from __future__ import annotations

import numpy as np

from training.averaging import mean_weight, mean_weights


def test_float_weights_are_averaged_over_the_epochs():
    copies = (np.array([1.0, 2.0], np.float32), np.array([3.0, 6.0], np.float32))
    averaged = mean_weight(copies)
    assert averaged.dtype == np.float32
    assert averaged.tolist() == [2.0, 4.0]


def test_counters_and_seed_states_keep_their_last_value():
    copies = (np.array([7, 1], np.uint32), np.array([9, 4], np.uint32))
    kept = mean_weight(copies)
    assert kept.dtype == np.uint32 and kept.tolist() == [9, 4]


def test_a_model_s_weight_lists_are_averaged_weight_by_weight():
    first = [np.zeros((2, 2), np.float32), np.array([1], np.int64)]
    second = [np.full((2, 2), 4.0, np.float32), np.array([2], np.int64)]
    kernel, counter = mean_weights([first, second])
    assert kernel.tolist() == [[2.0, 2.0], [2.0, 2.0]] and counter.tolist() == [2]
