import math

import pytest

from src.errors import ConfigError
from src.schedules import TeacherForcingSchedule


def test_constant_schedule_keeps_start():
    assert TeacherForcingSchedule(start=0.7)(123456) == 0.7


def test_linear_schedule_reaches_end_and_stays():
    schedule = TeacherForcingSchedule(start=1.0, end=0.5, decay="linear", decay_steps=100)
    assert schedule(0) == 1.0 and schedule(50) == 0.75 and schedule(100) == 0.5 and schedule(1000) == 0.5


def test_exponential_schedule_decays_monotonically_towards_end():
    schedule = TeacherForcingSchedule(start=1.0, end=0.2, decay="exponential", decay_steps=100)
    values = [schedule(step) for step in range(0, 200, 10)]
    assert values == sorted(values, reverse=True)
    assert math.isclose(schedule(100), 0.2 + 0.8 * math.exp(-5), rel_tol=1e-9)


@pytest.mark.parametrize("kwargs", [{"start": 1.5}, {"end": -0.1}, {"decay": "cosine"}, {"decay_steps": 0}])
def test_invalid_schedule_is_a_config_error_naming_the_option(kwargs):
    with pytest.raises(ConfigError, match="model.teacher_forcing"):
        TeacherForcingSchedule(**kwargs)
