"""HTMX request details, read from the request headers in one place."""

from __future__ import annotations

import json
from dataclasses import dataclass

from flask import Response, request


@dataclass(frozen=True)
class HtmxDetails:
    is_htmx: bool
    target: str | None
    trigger: str | None
    boosted: bool

    def __bool__(self) -> bool:
        return self.is_htmx


def htmx() -> HtmxDetails:
    headers = request.headers
    return HtmxDetails(
        is_htmx=headers.get("HX-Request") == "true",
        target=headers.get("HX-Target"),
        trigger=headers.get("HX-Trigger"),
        boosted=headers.get("HX-Boosted") == "true",
    )


def announce(response: Response, message: str, focus: str | None = None) -> Response:
    """Ask the page to read ``message`` in its live region and move focus to ``focus``."""
    response.headers["HX-Trigger-After-Settle"] = json.dumps(
        {"personal-auth:announce": {"message": message, "focus": focus}}
    )
    return response
