"""Check token API responses against the OpenAPI document the API publishes."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse

DOCUMENT_PATH = Path(__file__).resolve().parents[2] / "app" / "api" / "openapi.json"


def load_document() -> dict:
    return json.loads(DOCUMENT_PATH.read_text())


@functools.cache
def openapi() -> OpenAPI:
    return OpenAPI.from_dict(load_document())


def validate_response(response) -> None:
    """Raise an openapi-core error unless ``response`` matches its operation and status.

    ``response.request`` is the request the Flask test client sent.
    """
    openapi().validate_response(WerkzeugOpenAPIRequest(response.request), WerkzeugOpenAPIResponse(response))


class ApiClient:
    """Send token API requests with a bearer key and validate every response."""

    def __init__(self, client):
        self.client = client

    def get(self, path: str, key: str | None = None, **headers: str):
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        response = self.client.get(path, headers=headers)
        validate_response(response)
        return response

    def token(self, key: str | None, username: str, integration: object):
        return self.get(f"/api/v1/users/{username}/integrations/{integration}/token", key)
