"""Stochastic weight averaging: the mean of a model's weights at the end of several epochs.

A stage's epochs scatter around a good point (on the ORAND validation tenth the line model's
score moves 3-5 points from one epoch to the next); their mean often sits nearer the middle.
Both trainers keep the average only when it beats every single epoch on validation."""

from __future__ import annotations

import numpy as np


def mean_weight(copies: tuple[np.ndarray, ...]) -> np.ndarray:
    """One weight averaged over epochs; counters and seed states keep their last value."""
    if not np.issubdtype(copies[0].dtype, np.floating):
        return copies[-1]
    return np.mean(copies, axis=0).astype(copies[0].dtype)


def mean_weights(snapshots: list[list[np.ndarray]]) -> list[np.ndarray]:
    """`model.get_weights()` lists taken after several epochs -> their average, weight by weight."""
    return [mean_weight(copies) for copies in zip(*snapshots, strict=True)]
