"""A line model of several members (training/ensemble.py): joined file, split decoding, vote."""

from __future__ import annotations

import numpy as np
import pytest

from ocrd.recognition import CTC_BLANK, LINE_CLASSES, decode_members, greedy_decode


def _frames(symbols: list[int], peak: float = 0.9) -> np.ndarray:
    probabilities = np.full((len(symbols), LINE_CLASSES), 0.01, np.float32)
    for frame, symbol in enumerate(symbols):
        probabilities[frame, symbol] = peak
    return probabilities


def test_one_member_is_its_own_reading() -> None:
    probabilities = _frames([4, CTC_BLANK, 2])
    assert decode_members(probabilities) == greedy_decode(probabilities, 3)


def test_agreeing_members_keep_the_reading_and_its_confidence() -> None:
    first, second = _frames([4, CTC_BLANK, 2], 0.9), _frames([CTC_BLANK, 4, 2], 0.8)
    reading = decode_members(np.concatenate([first, second], axis=1))
    assert reading.text == "42"
    assert reading.confidence == pytest.approx((0.9**2 + 0.8**2) / 2)
    assert reading.positions == greedy_decode(first, 3).positions  # the first member's


def test_disagreeing_members_show_in_the_confidence() -> None:
    first, second = _frames([4, CTC_BLANK, 2], 0.9), _frames([4, CTC_BLANK, 7], 0.95)
    reading = decode_members(np.concatenate([first, second], axis=1))
    assert reading.text == "47"  # the surer member wins
    assert reading.confidence == pytest.approx(0.95**2 / 2)  # the other counts 0


def test_joined_model_outputs_each_members_probabilities(tmp_path) -> None:
    from training.ensemble import join_members
    from training.sequence import build_model, with_softmax

    paths = []
    for seed in (1, 2):
        path = tmp_path / f"member{seed}.keras"
        with_softmax(build_model(seed)).save(path)
        paths.append(path)
    joined = join_members(paths)
    joined.save(tmp_path / "joined.keras")
    import keras

    loaded = keras.models.load_model(tmp_path / "joined.keras", compile=False)
    lines = np.random.default_rng(0).random((2, 32, 64, 1)).astype(np.float32)
    together = np.asarray(loaded(lines, training=False))
    assert together.shape == (2, 16, 2 * LINE_CLASSES)
    for index, path in enumerate(paths):
        alone = np.asarray(keras.models.load_model(path, compile=False)(lines, training=False))
        part = together[..., index * LINE_CLASSES : (index + 1) * LINE_CLASSES]
        np.testing.assert_allclose(part, alone, atol=1e-6)
