"""Settings from the environment: a value the service would misuse is refused naming the variable."""

from __future__ import annotations

import pytest

from openflix.errors import ConfigError
from openflix.settings import Settings


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("OPENFLIX_TITLE_GB", "0", "expected a number > 0"),  # every fill would divide by it
        ("OPENFLIX_TITLE_GB", "nan", "expected a finite number >= 0"),
        ("OPENFLIX_URL_TTL_S", "inf", "expected a finite number >= 0"),  # int(inf) at every steer
        ("OPENFLIX_SEED", "-1", "expected a finite number >= 0"),  # numpy refuses negative seeds
        ("OPENFLIX_HEALTH_STALE_S", "-5", "expected a finite number >= 0"),
        ("OPENFLIX_MAX_BODY_MB", "0", "expected a number > 0"),
        ("OPENFLIX_FILL", "maybe", "expected on or off"),  # anything but off meant on
        ("OPENFLIX_URL_TTL_S", "1e30", "expected at most 31,536,000"),  # every steer failed on its expiry
        ("OPENFLIX_SEED", "4.5", "is not a valid int"),
    ],
)
def test_a_number_the_service_would_misuse_is_refused_naming_the_variable(
    variable: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=f"{variable}='{value}'.*{message}"):
        Settings.from_env({variable: value})


def test_numbers_in_range_and_unset_variables_are_read() -> None:
    s = Settings.from_env({"OPENFLIX_TITLE_GB": "2.5", "OPENFLIX_SEED": "0", "OPENFLIX_MODEL_POLL": "0"})
    assert (s.title_gb, s.seed, s.model_poll) == (2.5, 0, 0.0)
    assert Settings.from_env({}) == Settings()
