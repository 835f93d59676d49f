"""Admin pages for the audit trail: filter, page through and export audit events."""

from __future__ import annotations

from flask import Response, render_template, request, stream_with_context

from app.admin import bp
from app.audit_search import csv_lines, known_actions, parse_filter, search
from app.auth.sessions import role_required
from app.htmx import htmx
from app.models import ROLE_ADMIN, utcnow
from app.registry import list_integrations


@bp.route("/audit")
@role_required(ROLE_ADMIN)
def audit_events():
    """Show one page of the events that match the filter in the query string."""
    audit_filter = parse_filter(request.args)
    page = search(audit_filter, request.args.get("page", 1, type=int)) if not audit_filter.errors else None
    status = 422 if audit_filter.errors else 200

    context = {"audit_filter": audit_filter, "page": page}
    if htmx():
        # HTMX swaps no 4xx response by default, and the errors belong in the results region.
        return render_template("admin/_audit_results.html", **context)
    return render_template(
        "admin/audit.html", actions=known_actions(), integrations=list_integrations(), **context
    ), status


@bp.route("/audit.csv")
@role_required(ROLE_ADMIN)
def audit_csv():
    """Download every event that matches the filter as CSV, newest first."""
    audit_filter = parse_filter(request.args)
    if audit_filter.errors:
        return Response(" ".join(audit_filter.errors.values()) + "\n", status=400, mimetype="text/plain")

    filename = f"audit-events-{utcnow():%Y%m%d-%H%M%S}.csv"
    response = Response(stream_with_context(csv_lines(audit_filter)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response
