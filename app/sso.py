"""Single sign-on to the app with OpenID Connect: authorization code flow with PKCE.

Authlib's Flask client keeps the state, nonce and PKCE verifier in the session cookie,
validates the ID token (signature, issuer, audience, expiry and nonce) and calls the
token and userinfo endpoints. The functions below map the verified claims to a user,
their roles and their groups; only ``fetch_identity`` reads the request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client.errors import MismatchingStateError
from authlib.integrations.flask_client import OAuth
from flask import Flask, current_app, request, session
from requests import RequestException
from sqlalchemy import select

from app import audit
from app.accounts import MAX_DISPLAY_NAME_LENGTH, AccountError, clean_email, find_user, roles_named
from app.config import ENV_PREFIX, ConfigError
from app.extensions import db
from app.models import ROLE_USER, ROLES, Group, User
from app.oauth_client import clean_error_code, clean_provider_text

log = logging.getLogger(__name__)

CLIENT_NAME = "sso"
EXTENSION_KEY = "authlib.integrations.flask_client"
MAX_USERNAME_LENGTH = 150


class SsoError(Exception):
    """Single sign-on failed; the message is safe to show and names the next step."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Identity:
    """A user as the identity provider described them, after the ID token was verified."""

    issuer: str
    subject: str
    preferred_username: str
    display_name: str
    email: str | None
    groups: tuple[str, ...]


def is_enabled(config: dict[str, Any] | None = None) -> bool:
    config = config if config is not None else current_app.config
    return bool(config.get("SSO_ISSUER"))


def redirect_uri() -> str:
    return current_app.config["BASE_URL"] + "/auth/sso/callback"


def parse_role_map(text: str) -> dict[str, set[str]]:
    """Parse ``group=role`` pairs separated by commas into the roles of each group."""
    role_map: dict[str, set[str]] = {}
    for entry in (text or "").split(","):
        if not entry.strip():
            continue
        group, separator, role = (part.strip() for part in entry.partition("="))
        if not separator or not group or not role:
            raise ConfigError(f"{ENV_PREFIX}SSO_ROLE_MAP entry {entry.strip()!r} is invalid: write it as group=role")
        if role not in ROLES:
            raise ConfigError(
                f"{ENV_PREFIX}SSO_ROLE_MAP entry {entry.strip()!r} names an unknown role: use {' or '.join(ROLES)}"
            )
        role_map.setdefault(group, set()).add(role)
    return role_map


def init_app(app: Flask) -> None:
    """Check the single sign-on settings and register the identity provider with Authlib.

    Each app gets its own registry, bound with ``init_app``, because Authlib's Flask
    registry keeps one set of clients and tests create several apps.
    """
    config = app.config
    if not is_enabled(config):
        return
    issuer = config["SSO_ISSUER"].rstrip("/")
    for key in ("SSO_CLIENT_ID", "SSO_CLIENT_SECRET"):
        if not config.get(key):
            raise ConfigError(f"{ENV_PREFIX}{key} is missing: single sign-on needs it when SSO_ISSUER is set")
    scopes = config["SSO_SCOPES"].split()
    if "openid" not in scopes:
        raise ConfigError(f"{ENV_PREFIX}SSO_SCOPES={config['SSO_SCOPES']!r} is invalid: include openid")
    config["SSO_ISSUER"] = issuer
    config["SSO_ROLE_MAPPING"] = parse_role_map(config["SSO_ROLE_MAP"])

    registry = OAuth()
    registry.init_app(app)
    registry.register(
        CLIENT_NAME,
        client_id=config["SSO_CLIENT_ID"],
        client_secret=config["SSO_CLIENT_SECRET"],
        server_metadata_url=issuer + "/.well-known/openid-configuration",
        client_kwargs={
            "scope": " ".join(scopes),
            "code_challenge_method": "S256",
            "default_timeout": (config["HTTP_CONNECT_TIMEOUT"], config["HTTP_READ_TIMEOUT"]),
        },
    )


def _client():
    return current_app.extensions[EXTENSION_KEY].create_client(CLIENT_NAME)


def _metadata() -> dict[str, Any]:
    """Load the discovery document and check that it belongs to the configured issuer."""
    issuer = current_app.config["SSO_ISSUER"]
    try:
        metadata = _client().load_server_metadata()
    except (RequestException, ValueError) as error:
        log.warning("SSO discovery failed: issuer %s, error %s", issuer, type(error).__name__)
        raise SsoError(
            "The identity provider could not be reached. Try again in a minute, or sign in with a local account.",
            status=502,
        ) from None
    if metadata.get("issuer") != issuer:
        log.warning("SSO discovery issuer mismatch: configured %s, document %s", issuer, metadata.get("issuer"))
        raise SsoError(
            "The identity provider's discovery document names another issuer. "
            "An administrator must check PERSONAL_AUTH_SSO_ISSUER.",
            status=502,
        )
    return metadata


def authorize_redirect():
    """Return the redirect to the identity provider, with new state, nonce and PKCE verifier."""
    _metadata()
    return _client().authorize_redirect(redirect_uri())


def fetch_identity() -> Identity:
    """Validate the callback request, exchange the code and return the verified identity."""
    metadata = _metadata()
    issuer = metadata["issuer"]
    error = request.args.get("error")
    if error:
        # Only the response to a sign-in that this browser started is shown, so a crafted link
        # cannot put its own text on this page.
        client = _client()
        state = request.args.get("state") or ""
        if client.framework.get_state_data(session, state) is None:
            raise SsoError(_failure_message(MismatchingStateError()))
        client.framework.clear_state_data(session, state)
        text = clean_error_code(error)
        log.info("SSO rejected by the identity provider: error %s", text)
        detail = clean_provider_text(request.args.get("error_description"), [])
        reason = f"{text}: {detail}" if detail else text
        raise SsoError(f"The identity provider did not sign you in ({reason}). Try again.", status=403)
    # RFC 9207: an authorization response from another issuer means a mix-up.
    returned_issuer = request.args.get("iss")
    if returned_issuer is not None and returned_issuer != issuer:
        log.warning("SSO callback from another issuer: expected %s", issuer)
        raise SsoError("The sign-in response came from another issuer (issuer mismatch). Start again.")

    client = _client()
    try:
        token = client.authorize_access_token()
        id_claims = token.get("userinfo")
        if not id_claims:
            raise SsoError("The identity provider returned no ID token. An administrator must check its settings.")
        claims = dict(id_claims)
        if metadata.get("userinfo_endpoint"):
            userinfo = client.userinfo(token=token)
            # OpenID Connect Core 1.0, section 5.3.2: the userinfo sub must equal the ID token's.
            if userinfo.get("sub") != claims.get("sub"):
                raise SsoError("The identity provider returned claims of another user. Start again.")
            claims.update(userinfo)
    except AuthlibBaseError as failure:
        log.warning("SSO callback rejected: error %s", getattr(failure, "error", type(failure).__name__))
        raise SsoError(_failure_message(failure)) from None
    except RequestException as failure:
        log.warning("SSO token request failed: error %s", type(failure).__name__)
        raise SsoError("The identity provider could not be reached. Try again in a minute.", status=502) from None
    return identity_from_claims(claims, issuer, current_app.config["SSO_GROUPS_CLAIM"])


def _failure_message(failure: AuthlibBaseError) -> str:
    error = getattr(failure, "error", "") or type(failure).__name__
    if error == "mismatching_state":
        return "This sign-in link was already used, expired or belongs to another browser (invalid state). Start again."
    if error in ("invalid_claim", "missing_claim", "expired_token", "invalid_token"):
        return f"The identity provider's ID token is invalid ({clean_provider_text(str(failure), [])}). Start again."
    return f"The identity provider rejected the sign-in ({clean_provider_text(error, [])}). Start again."


def identity_from_claims(claims: dict[str, Any], issuer: str, groups_claim: str) -> Identity:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise SsoError("The identity provider's claims have no sub. An administrator must check its settings.")
    raw_groups = claims.get(groups_claim) or []
    if isinstance(raw_groups, str):
        raw_groups = raw_groups.split()
    groups = tuple(sorted({group for group in raw_groups if isinstance(group, str)}))
    email = claims.get("email") if isinstance(claims.get("email"), str) else None
    name = claims.get("name") if isinstance(claims.get("name"), str) else ""
    preferred = claims.get("preferred_username")
    preferred_username = preferred if isinstance(preferred, str) and preferred.strip() else (email or subject)
    return Identity(issuer, subject, preferred_username.strip(), name.strip(), email, groups)


def sign_in(identity: Identity) -> User:
    """Find or create the user of ``identity`` and set their profile, roles and groups.

    Raise SsoError when the account is deactivated, unknown without auto-creation, or
    left without a role.
    """
    user = db.session.scalar(
        select(User).where(User.sso_issuer == identity.issuer, User.sso_subject == identity.subject)
    )
    created = False
    if user is None:
        user, created = _new_or_linked_user(identity)
    if not user.is_enabled:
        log.info("SSO sign-in of a deactivated user rejected: user %s", user.id)
        raise SsoError("Your account is deactivated. Ask an administrator if this is wrong.", status=403)

    _update_profile(user, identity)
    _sync_groups(user, identity)
    _sync_roles(user, identity, created)
    audit.record(
        "user.sso_login",
        actor_user_id=user.id,
        subject_user_id=user.id,
        detail=("account created; " if created else "") + "groups: " + (",".join(identity.groups) or "none"),
        commit=False,
    )
    db.session.commit()
    log.info("SSO sign-in: user %s, created %s, groups %s", user.id, created, len(user.groups))

    if not user.roles:
        raise SsoError(
            "Your account has no role in Personal Auth. Ask an administrator to add you to the right group.",
            status=403,
        )
    return user


def _new_or_linked_user(identity: Identity) -> tuple[User, bool]:
    if not current_app.config["SSO_AUTO_CREATE_USERS"]:
        # An admin created the account beforehand under the identity provider's username.
        user = find_user(identity.preferred_username)
        if user is None or user.sso_subject is not None:
            log.info("SSO sign-in of an unknown user rejected")
            raise SsoError(
                f"There is no Personal Auth account for {identity.preferred_username}. "
                "Ask an administrator to create it.",
                status=403,
            )
        user.sso_issuer, user.sso_subject = identity.issuer, identity.subject
        return user, False

    user = User(
        username=_free_username(identity.preferred_username),
        sso_issuer=identity.issuer,
        sso_subject=identity.subject,
        is_enabled=True,
    )
    db.session.add(user)
    return user, True


def _free_username(wanted: str) -> str:
    """Return ``wanted``, or ``wanted-2``, ``wanted-3``… when a local account already has it."""
    base = wanted[: MAX_USERNAME_LENGTH - 8]
    candidate, number = base, 1
    while find_user(candidate) is not None:
        number += 1
        candidate = f"{base}-{number}"
    return candidate


def _update_profile(user: User, identity: Identity) -> None:
    user.display_name = identity.display_name[:MAX_DISPLAY_NAME_LENGTH]
    try:
        user.email = clean_email(identity.email)
    except AccountError:
        log.info("SSO email claim ignored because it is invalid: user %s", user.id)
        user.email = None


def _sync_groups(user: User, identity: Identity) -> None:
    """Make the user a member of exactly the app's groups named in the claim."""
    if not identity.groups:
        user.groups = []
        return
    user.groups = list(db.session.scalars(select(Group).where(Group.name.in_(identity.groups)).order_by(Group.name)))


def _sync_roles(user: User, identity: Identity, created: bool) -> None:
    """Grant the roles that SSO_ROLE_MAP maps the claim's groups to, and remove the other mapped roles."""
    role_map: dict[str, set[str]] = current_app.config["SSO_ROLE_MAPPING"]
    if not role_map:
        if created:
            user.roles = roles_named([ROLE_USER])
        return
    managed = set().union(*role_map.values())
    granted = set().union(*(role_map.get(group, set()) for group in identity.groups))
    kept = {role.name for role in user.roles} - managed
    user.roles = roles_named(sorted(kept | granted))
