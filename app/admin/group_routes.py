"""Admin pages for groups: list, create, edit and delete."""

from __future__ import annotations

from flask import flash, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField

from app.admin import bp
from app.admin.routes import confirm_delete, get_or_404, render_form, see_other, show_errors
from app.auth.sessions import role_required
from app.groups import GroupError, GroupInput, delete_blocker, delete_group, list_groups, save_group
from app.models import ROLE_ADMIN, Group


class GroupForm(FlaskForm):
    name = StringField("Name")
    description = TextAreaField("Description (optional)")

    def to_input(self) -> GroupInput:
        return GroupInput(name=self.name.data or "", description=self.description.data or "")


def show_group_error(form: FlaskForm, error: GroupError) -> None:
    message = str(error)
    show_errors(form, {error.field or "": [message[:1].upper() + message[1:] + "."]})


@bp.route("/groups")
@role_required(ROLE_ADMIN)
def groups():
    return render_template("admin/groups.html", groups=list_groups())


@bp.route("/groups/new", methods=["GET", "POST"])
@role_required(ROLE_ADMIN)
def new_group():
    form = GroupForm()
    if form.validate_on_submit():
        try:
            group = save_group(form.to_input(), actor_user_id=current_user.id)
        except GroupError as error:
            show_group_error(form, error)
        else:
            flash(f"Group {group.name} is created.", "success")
            return see_other("admin.groups")
    return render_form("admin/group_form.html", form, group=None)


@bp.route("/groups/<int:group_id>/edit", methods=["GET", "POST"])
@role_required(ROLE_ADMIN)
def edit_group(group_id: int):
    group = get_or_404(Group, group_id)
    form = GroupForm(data={"name": group.name, "description": group.description})
    if form.validate_on_submit():
        try:
            save_group(form.to_input(), existing=group, actor_user_id=current_user.id)
        except GroupError as error:
            show_group_error(form, error)
        else:
            flash(f"Group {group.name} is saved.", "success")
            return see_other("admin.groups")
    return render_form("admin/group_form.html", form, group=group)


@bp.route("/groups/<int:group_id>/delete", methods=["GET", "POST"])
@role_required(ROLE_ADMIN)
def confirm_delete_group(group_id: int):
    """Ask before deleting a group, naming the integrations that it opens up."""
    group = get_or_404(Group, group_id)
    return confirm_delete(
        "group",
        group.name,
        url_for("admin.edit_group", group_id=group.id),
        f"Its {len(group.members)} members lose the integrations that only this group opens.",
        delete=lambda: delete_group(group, actor_user_id=current_user.id),
        blocker=lambda: delete_blocker(group),
        in_use_error=GroupError,
        list_endpoint="admin.groups",
    )
