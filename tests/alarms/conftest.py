from tests.telemetry.conftest import kit  # noqa: F401  (the same devices)
