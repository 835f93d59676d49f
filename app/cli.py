"""``flask`` commands for scripted deployments."""

from __future__ import annotations

from flask import Flask


def register_commands(app: Flask) -> None:
    pass
