"""Jinja filters for dates shown on cards."""

from __future__ import annotations

from datetime import datetime

from flask import Flask
from markupsafe import Markup, escape

from app.models import utcnow


def format_datetime(value: datetime | None) -> Markup | str:
    if value is None:
        return ""
    iso = value.isoformat()
    return Markup('<time datetime="{}">{}</time>').format(escape(iso), value.strftime("%Y-%m-%d %H:%M UTC"))


UNITS = ((86400, "day"), (3600, "hour"), (60, "minute"))


def relative(value: datetime | None, now: datetime | None = None) -> str:
    """Describe ``value`` relative to now: "in 59 minutes", "3 hours ago"."""
    if value is None:
        return ""
    seconds = int((value - (now or utcnow())).total_seconds())
    future = seconds >= 0
    seconds = abs(seconds)
    matching = [(seconds // size, unit) for size, unit in UNITS if seconds >= size]
    if not matching:
        return "in less than a minute" if future else "less than a minute ago"
    count, unit = matching[0]
    label = f"{count} {unit}{'s' if count != 1 else ''}"
    return f"in {label}" if future else f"{label} ago"


def register(app: Flask) -> None:
    app.add_template_filter(format_datetime, "datetime")
    app.add_template_filter(relative, "relative")
