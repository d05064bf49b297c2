"""Check an agent answer against its own OpenAPI document: declared status, and body matching the schema."""
from __future__ import annotations

import json

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError


class Contract:
    """The agent's /openapi.json, ready to judge answers."""

    def __init__(self, doc: dict):
        self.doc = doc
        self._validators: dict = {}

    def _validator(self, schema: dict) -> Draft202012Validator:
        """A validator whose '#/components/...' references resolve inside the document."""
        key = json.dumps(schema, sort_keys=True)
        if key not in self._validators:
            self._validators[key] = Draft202012Validator({**schema, "components": self.doc.get("components", {})})
        return self._validators[key]

    def check(self, method: str, template: str, status: int, body: bytes) -> str | None:
        """None when the answer is within the contract, else what is wrong."""
        responses = self.doc["paths"][template][method.lower()]["responses"]
        declared = responses.get(str(status))
        if declared is None:
            return f"status {status} is not declared for {method} {template}"
        schema = (declared.get("content") or {}).get("application/json", {}).get("schema")
        if schema is None:
            return None
        try:
            data = json.loads(body)
        except ValueError:
            return f"{status} body is not JSON: {body[:80]!r}"
        try:
            self._validator(schema).validate(data)
        except ValidationError as exc:
            return f"{status} body does not match its schema: {exc.message}"
        return None
