"""The OpenAPI document is a complete contract: a bounded schemathesis run against a live loopback agent."""
import pytest

schemathesis = pytest.importorskip("schemathesis")  # pinned in the test extra
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (content_type_conformance, negative_data_rejection,  # noqa: E402
                                 response_headers_conformance, response_schema_conformance,
                                 status_code_conformance)

from agent_testlib import TOKEN, LiveServer  # noqa: E402

# positive_data_acceptance is left out on purpose: a schema can say "binary", not "a loadable ONNX model", so
# schema-valid random bodies are rightly answered 422 (a declared status).
CHECKS = [status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection]


@pytest.fixture(scope="module")
def agent_api():
    with LiveServer(sensor_name="estimate", job_setup_s=1.0, body_idle_timeout_s=2.0) as live:
        api = schemathesis.openapi.from_url(live.url + "/openapi.json")
        api.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
        yield api


def test_openapi_declares_body_security_and_errors(agent_api):
    doc = agent_api.raw_schema
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    measure = doc["paths"]["/v1/measure"]["post"]
    assert measure["requestBody"]["content"]["application/octet-stream"]["schema"]["format"] == "binary"
    assert {"200", "202", "400", "401", "408", "413", "422", "501", "503"} <= set(measure["responses"])
    threads = next(p for p in measure["parameters"] if p["name"] == "threads")
    assert threads["schema"]["maximum"] >= 1 and "allowed range" in threads["description"]
    assert {"200", "401", "404", "409"} <= set(doc["paths"]["/v1/jobs/{job_id}"]["delete"]["responses"])


contract = schemathesis.pytest.from_fixture("agent_api")


@contract.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_matches_the_contract(case):
    response = case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS, timeout=30)
    assert response.status_code != 500, response.text
