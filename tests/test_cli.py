import re

import pytest
from sqlalchemy import func, select

from app.accounts import find_user
from app.crypto import Keyring
from app.extensions import db
from app.models import ROLE_ADMIN, ROLE_USER, GrantType, Integration, IntegrationType, LoginSession, Provider, User
from tests.conftest import PASSWORD

#: Variables the commands read; cleared in every call so the outer environment cannot leak in.
NO_SECRETS = {
    "PERSONAL_AUTH_NEW_USER_PASSWORD": None,
    "PERSONAL_AUTH_ADMIN_PASSWORD": None,
    "PERSONAL_AUTH_CLIENT_SECRET": None,
}
CLIENT_SECRET = "cli-client-secret-0815-do-not-print"


def invoke(runner, *args, input=None, **env):
    return runner.invoke(args=list(args), env={**NO_SECRETS, **env}, input=input)


def role_names(user: User) -> list[str]:
    return sorted(role.name for role in user.roles)


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def add_provider(runner, *extra, name="Code Hub"):
    return invoke(
        runner,
        "providers",
        "add",
        "--name",
        name,
        "--client-id",
        "code-hub-client",
        "--authorization-url",
        "https://codehub.invalid/authorize",
        "--token-url",
        "https://codehub.invalid/token",
        *extra,
        PERSONAL_AUTH_CLIENT_SECRET=CLIENT_SECRET,
    )


# users create --------------------------------------------------------------------------


def test_users_create_with_env_password(runner):
    password = "env-password-12345"

    result = invoke(
        runner,
        "users",
        "create",
        "bob",
        "--role",
        ROLE_USER,
        "--role",
        ROLE_ADMIN,
        "--display-name",
        "Bob Builder",
        PERSONAL_AUTH_NEW_USER_PASSWORD=password,
    )

    assert result.exit_code == 0, result.output
    assert password not in result.output
    user = find_user("bob")
    assert role_names(user) == sorted([ROLE_ADMIN, ROLE_USER])
    assert user.display_name == "Bob Builder"
    assert user.check_password(password)


def test_users_create_defaults_to_personal_role(runner):
    result = invoke(runner, "users", "create", "bob", PERSONAL_AUTH_NEW_USER_PASSWORD="env-password-12345")

    assert result.exit_code == 0, result.output
    assert role_names(find_user("bob")) == [ROLE_USER]


def test_users_create_prompts_for_hidden_password(runner):
    password = "typed-password-123"

    result = invoke(runner, "users", "create", "bob", input=f"{password}\n{password}\n")

    assert result.exit_code == 0, result.output
    assert "Password" in result.output
    assert password not in result.output
    assert find_user("bob").check_password(password)


def test_users_create_without_password_source(runner):
    result = invoke(runner, "users", "create", "bob", input="")

    assert result.exit_code == 1
    assert "Error: password is missing: set PERSONAL_AUTH_NEW_USER_PASSWORD" in result.stderr
    assert find_user("bob") is None


def test_users_create_generated_password_printed_once(runner):
    result = invoke(runner, "users", "create", "bob", "--generate-password")

    assert result.exit_code == 0, result.output
    password = re.search(r"password: (\S+)$", result.stdout.strip()).group(1)
    assert result.output.count(password) == 1
    assert find_user("bob").check_password(password)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["bob"], {"PERSONAL_AUTH_NEW_USER_PASSWORD": "short"}, "password is too short"),
        (["alice"], {"PERSONAL_AUTH_NEW_USER_PASSWORD": "env-password-12345"}, "username 'alice' is already taken"),
        (["bob", "--role", "root"], {"PERSONAL_AUTH_NEW_USER_PASSWORD": "env-password-12345"}, "unknown role 'root'"),
        (
            ["bob", "--generate-password"],
            {"PERSONAL_AUTH_NEW_USER_PASSWORD": "env-password-12345"},
            "--generate-password and PERSONAL_AUTH_NEW_USER_PASSWORD are both set",
        ),
    ],
)
def test_users_create_rejects_bad_input(runner, user, args, env, message):
    result = invoke(runner, "users", "create", *args, **env)

    assert result.exit_code == 1
    assert f"Error: {message}" in result.stderr
    assert count(User) == 1


# users ensure-admin --------------------------------------------------------------------


def test_ensure_admin_prints_password_once(runner):
    result = invoke(runner, "users", "ensure-admin")

    assert result.exit_code == 0, result.output
    match = re.fullmatch(r"Created admin user 'admin' with password: (\S+)", result.stdout.strip())
    assert match, result.output
    password = match.group(1)
    assert result.output.count(password) == 1
    admin = find_user("admin")
    assert role_names(admin) == sorted([ROLE_ADMIN, ROLE_USER])
    assert admin.check_password(password)


def test_ensure_admin_is_idempotent(runner):
    first = invoke(runner, "users", "ensure-admin")
    password = first.stdout.strip().rsplit(" ", 1)[-1]

    second = invoke(runner, "users", "ensure-admin")

    assert second.exit_code == 0, second.output
    assert "already exists" in second.output
    assert password not in second.output
    assert count(User) == 1
    assert find_user("admin").check_password(password)


def test_ensure_admin_keeps_existing_admin(runner, admin_user):
    result = invoke(runner, "users", "ensure-admin")

    assert result.exit_code == 0
    assert "'root-admin'" in result.output
    assert find_user("admin") is None


def test_ensure_admin_uses_env_password(runner):
    result = invoke(
        runner, "users", "ensure-admin", "--username", "boss", PERSONAL_AUTH_ADMIN_PASSWORD="admin-password-123"
    )

    assert result.exit_code == 0, result.output
    assert "admin-password-123" not in result.output
    assert find_user("boss").check_password("admin-password-123")


def test_ensure_admin_replaces_deactivated_admin(runner, make_user):
    old = make_user("old-admin", roles=(ROLE_ADMIN,))
    invoke(runner, "users", "deactivate", "old-admin")

    result = invoke(runner, "users", "ensure-admin")

    assert result.exit_code == 0, result.output
    assert find_user("admin").has_role(ROLE_ADMIN)
    assert old.is_enabled is False


def test_ensure_admin_username_taken(runner, make_user):
    make_user("admin", roles=(ROLE_USER,))

    result = invoke(runner, "users", "ensure-admin")

    assert result.exit_code == 1
    assert "already taken by a user who is not an enabled admin" in result.stderr
    assert "flask users set-roles admin" in result.stderr
    assert not find_user("admin").has_role(ROLE_ADMIN)


# users list, set-roles, deactivate, activate, set-password -----------------------------


def test_users_list(runner, user, admin_user):
    result = invoke(runner, "users", "list")

    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["USERNAME", "DISPLAY", "NAME", "ROLES", "ENABLED"]
    assert re.search(rf"^alice\s+{ROLE_USER}\s+yes$", result.output, re.M)
    assert re.search(r"^root-admin\s+admin,personal_auth_user\s+yes$", result.output, re.M)


def test_users_set_roles(runner, user):
    result = invoke(runner, "users", "set-roles", "alice", "--role", ROLE_ADMIN)

    assert result.exit_code == 0, result.output
    assert role_names(user) == [ROLE_ADMIN]


def test_set_roles_warns_without_admin(runner, admin_user):
    result = invoke(runner, "users", "set-roles", admin_user.username, "--role", ROLE_USER)

    assert result.exit_code == 0
    assert "no enabled user has the admin role" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["alice", "--role", "root"], "unknown role 'root'"),
        (["alice"], "give at least one --role"),
        (["nobody", "--role", ROLE_USER], "no user named 'nobody'"),
    ],
)
def test_users_set_roles_rejects_bad_input(runner, user, args, message):
    result = invoke(runner, "users", "set-roles", *args)

    assert result.exit_code == 1
    assert f"Error: {message}" in result.stderr
    assert role_names(user) == [ROLE_USER]


def test_users_deactivate_and_activate(runner, user, auth):
    auth.login("alice")
    assert db.session.scalar(select(func.count()).where(LoginSession.user_id == user.id)) == 1

    deactivated = invoke(runner, "users", "deactivate", "alice")

    assert deactivated.exit_code == 0, deactivated.output
    assert user.is_enabled is False
    assert db.session.scalar(select(func.count()).where(LoginSession.user_id == user.id)) == 0

    activated = invoke(runner, "users", "activate", "alice")

    assert activated.exit_code == 0, activated.output
    assert user.is_enabled is True


@pytest.mark.parametrize("command", ["deactivate", "activate", "set-password"])
def test_users_command_unknown_user(runner, command):
    result = invoke(runner, "users", command, "nobody", PERSONAL_AUTH_NEW_USER_PASSWORD="env-password-12345")

    assert result.exit_code == 1
    assert "Error: no user named 'nobody'" in result.stderr


def test_users_set_password(runner, user):
    result = invoke(runner, "users", "set-password", "alice", PERSONAL_AUTH_NEW_USER_PASSWORD="new-password-12345")

    assert result.exit_code == 0, result.output
    assert "new-password-12345" not in result.output
    assert user.check_password("new-password-12345")
    assert not user.check_password(PASSWORD)


# providers -----------------------------------------------------------------------------


def test_providers_add_with_env_secret(runner):
    result = add_provider(runner, "--scopes", "repo read:user", "--client-auth", "client_secret_post", "--no-pkce")

    assert result.exit_code == 0, result.output
    assert CLIENT_SECRET not in result.output
    provider = db.session.scalar(select(Provider))
    assert provider.name == "Code Hub"
    assert provider.client_secret == CLIENT_SECRET
    assert provider.default_scopes == "repo read:user"
    assert provider.client_auth_method.value == "client_secret_post"
    assert provider.use_pkce is False
    assert provider.grant_type == GrantType.AUTHORIZATION_CODE


def test_providers_add_prompts_for_hidden_secret(runner):
    result = invoke(
        runner,
        "providers",
        "add",
        "--name",
        "Service Desk",
        "--client-id",
        "desk",
        "--token-url",
        "https://desk.invalid/oauth_token.do",
        "--grant-type",
        "password",
        input=f"{CLIENT_SECRET}\n{CLIENT_SECRET}\n",
    )

    assert result.exit_code == 0, result.output
    assert CLIENT_SECRET not in result.output
    provider = db.session.scalar(select(Provider))
    assert provider.client_secret == CLIENT_SECRET
    assert provider.grant_type == GrantType.PASSWORD


def test_providers_add_has_no_secret_option(runner):
    result = add_provider(runner, "--client-secret", "leaked")

    assert result.exit_code == 2
    assert count(Provider) == 0


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--token-url", "ftp://codehub.invalid/token"], "Error: token_url: Token URL 'ftp://codehub.invalid/token'"),
        (["--authorization-url", ""], "Error: authorization_url: Authorization URL is required"),
        (["--grant-type", "implicit"], "Error: grant_type: Grant type 'implicit' is not supported"),
        (["--client-auth", "private_key_jwt"], "Error: client_auth_method: Client authentication 'private_key_jwt'"),
    ],
)
def test_providers_add_rejects_bad_input(runner, args, line):
    result = add_provider(runner, *args)

    assert result.exit_code == 1
    assert line in result.stderr
    assert count(Provider) == 0


def test_providers_add_rejects_duplicate_name(runner):
    add_provider(runner)

    result = add_provider(runner, name="code hub")

    assert result.exit_code == 1
    assert "Error: name: A provider named 'code hub' already exists." in result.stderr
    assert count(Provider) == 1


def test_providers_list_never_shows_secret(runner, make_integration):
    add_provider(runner)
    make_integration("Team Tracker", db.session.scalar(select(Provider)))

    result = invoke(runner, "providers", "list")

    assert result.exit_code == 0
    assert CLIENT_SECRET not in result.output
    assert db.session.scalar(select(Provider)).client_secret_ciphertext not in result.output
    assert re.search(
        r"^Code Hub\s+authorization_code\s+code-hub-client\s+\S+/token\s+Team Tracker$", result.output, re.M
    )


# integrations --------------------------------------------------------------------------


def test_integrations_add_and_list(runner):
    add_provider(runner, "--scopes", "repo")

    added = invoke(
        runner,
        "integrations",
        "add",
        "--name",
        "Nightly Export",
        "--provider",
        "code hub",
        "--description",
        "Copies issues at night.",
        "--type",
        "system",
        "--api-base-url",
        "https://api.codehub.invalid",
    )
    listed = invoke(runner, "integrations", "list")

    assert added.exit_code == 0, added.output
    integration = db.session.scalar(select(Integration))
    assert integration.integration_type == IntegrationType.SYSTEM
    assert integration.provider.name == "Code Hub"
    assert integration.scopes is None
    assert integration.api_base_url == "https://api.codehub.invalid"
    assert re.search(r"^Nightly Export\s+system\s+Code Hub\s+yes\s+repo$", listed.output, re.M)


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--provider", "Nowhere"], "Error: provider: no provider named 'Nowhere'"),
        (["--type", "shared"], "Error: integration_type: Type 'shared' is not supported"),
        (["--api-base-url", "api.codehub.invalid"], "Error: api_base_url: API base URL 'api.codehub.invalid'"),
        (["--name", " "], "Error: name: Name is required."),
    ],
)
def test_integrations_add_rejects_bad_input(runner, args, line):
    add_provider(runner)

    result = invoke(runner, "integrations", "add", "--name", "Team Tracker", "--provider", "Code Hub", *args)

    assert result.exit_code == 1
    assert line in result.stderr
    assert count(Integration) == 0


# keys ----------------------------------------------------------------------------------


def test_keys_generate(runner):
    result = invoke(runner, "keys", "generate")

    assert result.exit_code == 0
    values = dict(line.split("=", 1) for line in result.output.splitlines())
    assert sorted(values) == ["PERSONAL_AUTH_ENCRYPTION_KEYS", "PERSONAL_AUTH_SECRET_KEY"]
    keyring = Keyring.parse(values["PERSONAL_AUTH_ENCRYPTION_KEYS"])
    assert keyring.decrypt(keyring.encrypt("x", "test"), "test") == "x"
    assert len(values["PERSONAL_AUTH_SECRET_KEY"]) >= 64


def test_keys_generate_differs_each_time(runner):
    first = invoke(runner, "keys", "generate").output

    second = invoke(runner, "keys", "generate").output

    assert set(first.splitlines()).isdisjoint(second.splitlines())


def test_ensure_admin_short_password_names_variable(runner):
    result = runner.invoke(args=["users", "ensure-admin"], env={"PERSONAL_AUTH_ADMIN_PASSWORD": "short"})
    assert result.exit_code == 1
    assert "PERSONAL_AUTH_ADMIN_PASSWORD: password is too short" in result.output
