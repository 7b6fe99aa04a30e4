"""What a test does when a service it needs (Synapse, PostgreSQL) is missing: fail under `make test`, else skip."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

#: Set by `make test`: the real services are part of the suite there, so a missing one is a failure.
REQUIRE_ENV = "GROOMGUARD_REQUIRE_SERVICES"


def missing_service(reason: str, module: bool = False) -> NoReturn:
    """Fail the test when services are required (make test), otherwise skip it with the reason.

    A targeted `pytest tests/test_x.py` on a laptop without Synapse may skip; the full suite may not,
    or a broken install would pass as "all green" with the Matrix and PostgreSQL tests silently gone.
    """
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{reason} (required: {REQUIRE_ENV} is set by make test)", pytrace=False)
    pytest.skip(reason, allow_module_level=module)
