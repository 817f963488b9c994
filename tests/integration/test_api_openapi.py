"""/openapi.json stays true: schemathesis generates requests for every operation from the
document and checks the real stack's answers against it (status codes, content types, schemas)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance
from schemathesis.core.parameters import ParameterLocation

from query_service.openapi import spec
from tests.conftest import Stack, unique_ship
from tests.integration.api_helpers import basic, get

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ingest_ship(stack: Stack) -> tuple[str, str]:
    return stack.ship(unique_ship("oas"))


# The document the service serves (test_served_document_is_the_module_s checks they are one),
# loaded at import time; the requests go to the stack's query service process. (Not
# schemathesis.pytest.from_fixture: its lazy loader fails on pytest 9.)
schema = schemathesis.openapi.from_dict(spec())


@schema.parametrize()
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_api_matches_its_document(case: Any, stack: Stack, ingest_ship: tuple[str, str]) -> None:
    base = f"http://127.0.0.1:{stack.cfg.http.port}"
    header_info = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
    if header_info is not None and header_info.mode == GenerationMode.NEGATIVE:
        # The case broke its headers on purpose (e.g. left out Authorization): adding valid
        # credentials would turn it back into a valid request.
        headers: dict[str, str] = {}
    elif case.method == "POST":
        headers = basic(*ingest_ship)
    else:
        headers = {"Authorization": f"Bearer {stack.token}"}
    # positive_data_acceptance is left out: OpenAPI cannot say "start before end" or "start and
    # end together", so schema-valid requests that break them get a (correct, documented) 400.
    case.call_and_validate(base_url=base, headers=headers,
                           excluded_checks=[positive_data_acceptance])


def test_served_document_is_the_module_s(stack: Stack) -> None:
    doc = get(stack, "/openapi.json", token=None).json
    assert doc == spec()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {
        "/data", "/v1/ships", "/v1/ships/{id}/energy", "/v1/ships/{id}/gaps",
        "/v1/ships/{id}/anomalies", "/v1/ships/{id}/meters", "/v1/fleet/energy",
        "/v1/fleet/top", "/v1/reports/energy", "/v1/alerts", "/healthz",
        "/metrics", "/openapi.json", "/"}
    assert set(doc["paths"]["/data"]) == {"get", "post"}
