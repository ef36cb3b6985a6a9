"""How the OpenAPI documents are fuzzed: the schemathesis checks and the Hypothesis settings.

Shared by the check of a deployed edge (edge_check.py, which imports it from this folder as a
script does) and the in-process test (tests/integration/test_openapi_fuzz.py), so both hold
every response to the same rules. Needs the dev dependencies (schemathesis, Hypothesis).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# No server error; every status, content type and body as the document says.
RESPONSE_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def fuzz_settings(max_examples: int, **extra: Any) -> settings:
    """Return the Hypothesis settings for fuzzing one operation with ``max_examples`` examples.

    No deadline, no example database, no shrinking (the first failing example is reported,
    which keeps runs short) and no health check; ``extra`` adds settings (``derandomize``).
    """
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        **extra,
    )
