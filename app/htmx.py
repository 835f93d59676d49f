"""HTMX request details, read from the request headers in one place."""

from __future__ import annotations

from dataclasses import dataclass

from flask import request


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
