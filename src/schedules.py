"""Teacher forcing: the probability of feeding the reference token instead of the model's own."""

import math
from typing import Literal

from src.checks import require_int, require_probability
from src.errors import ConfigError

Decay = Literal["constant", "linear", "exponential"]


class TeacherForcingSchedule:
    """Teacher-forcing ratio as a function of the optimizer step.

    constant:    ratio = start
    linear:      ratio goes from `start` to `end` in `decay_steps` steps, then stays at `end`
    exponential: ratio = end + (start - end) * exp(-5 * step / decay_steps)
                 (within 1 % of `end` after `decay_steps`)
    """

    def __init__(
        self, start: float = 1.0, end: float = 1.0, decay: Decay = "constant", decay_steps: int = 10000
    ):
        # a ratio is the probability of feeding the reference token (1.0 = always)
        require_probability("model.teacher_forcing.start", start)
        require_probability("model.teacher_forcing.end", end)
        if decay not in ("constant", "linear", "exponential"):
            raise ConfigError(
                f"model.teacher_forcing.decay={decay!r} is not one of constant, linear, exponential."
            )
        require_int("model.teacher_forcing.decay_steps", decay_steps)
        self.start, self.end, self.decay, self.decay_steps = start, end, decay, decay_steps

    def __call__(self, step: int) -> float:
        if self.decay == "constant":
            return self.start
        progress = step / self.decay_steps
        if self.decay == "linear":
            return self.start + (self.end - self.start) * min(progress, 1.0)
        return self.end + (self.start - self.end) * math.exp(-5.0 * progress)
