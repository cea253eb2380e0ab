"""The real Home Assistant for tests/homeassistant: skipped where it is not installed, except
under CI=true, where a missing install is a failure (CI must prove the test ran)."""
import os

import pytest

from homeassistant_server import HomeAssistant, find_hass


@pytest.fixture
def home_assistant(tmp_path):
    if find_hass() is None:
        message = "Home Assistant is not installed: run ci/install-homeassistant.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    ha = HomeAssistant(tmp_path)
    try:
        yield ha.start()
    finally:
        ha.stop()
