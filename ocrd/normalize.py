"""The one place where crops become model inputs.

Both `training/` and inference import these functions, so training and serving can
never drift apart. Convention for inputs: uint8 grayscale crops with INK BRIGHT
(255) on a dark (0) background, i.e. already inverted from paper.

(Owned by the recognition-models work; the signatures below are the contract.)
"""

from __future__ import annotations

import numpy as np

DIGIT_SIZE = 28  # MNIST convention: digit in a 20x20 box, centred by centre of mass
LINE_HEIGHT = 32  # sequence recognizer input height
MAX_LINE_WIDTH = 512  # lines are padded/bucketed up to this width


def normalize_digit(crop: np.ndarray) -> np.ndarray:
    """Ink-bright uint8 crop of one digit -> float32 (28, 28) in [0, 1], MNIST convention."""
    raise NotImplementedError


def normalize_line(crop: np.ndarray) -> np.ndarray:
    """Ink-bright uint8 crop of a digit string -> float32 (LINE_HEIGHT, W) in [0, 1]."""
    raise NotImplementedError
