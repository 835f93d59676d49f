from flask import render_template

from app.admin import bp
from app.auth.sessions import role_required
from app.models import ROLE_ADMIN


@bp.route("/")
@role_required(ROLE_ADMIN)
def index():
    return render_template("admin/index.html")
