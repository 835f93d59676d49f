"""Sign-in with local accounts, login sessions and role checks."""

from flask import Blueprint

bp = Blueprint("auth", __name__)

from app.auth import routes, sso_routes  # noqa: E402,F401


@bp.record_once
def _init_sso(state) -> None:
    from app import sso

    sso.init_app(state.app)
