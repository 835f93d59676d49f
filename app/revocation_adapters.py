"""Token revocation for providers that do not follow RFC 7009.

Each adapter revokes one token, given the ``token_type_hint`` it was stored under, and
returns normally when the token no longer works at the provider. It raises ProviderError
(or a requests exception) when the provider did not confirm, so app.revocation keeps the
credential in *revocation pending* and retries later.

The request formats come from each provider's documentation, which the catalog entry of
the same name links to (app/catalog/providers.toml).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import quote

import requests
from authlib.common.errors import AuthlibBaseError
from flask import current_app

from app.models import Provider
from app.oauth_client import ProviderError, clean_error_code, encode_client_secret_basic, provider_session

log = logging.getLogger(__name__)

Adapter = Callable[[Provider, str, str], None]


def _send(method: str, url: str, **kwargs) -> requests.Response:
    """Send one request with the configured timeouts, following no redirect.

    A redirect would carry the token to a URL that the outbound URL policy never
    checked, so a 3xx response counts as a failure.
    """
    config = current_app.config
    timeout = (config["HTTP_CONNECT_TIMEOUT"], config["HTTP_READ_TIMEOUT"])
    return requests.request(method, url, timeout=timeout, allow_redirects=False, **kwargs)


def _basic_auth_header(provider: Provider) -> dict[str, str]:
    class _Client:
        client_id = provider.client_id
        client_secret = provider.client_secret

    _, headers, _ = encode_client_secret_basic(_Client, "POST", "", {}, "")
    return headers


def _json_body(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _failure(response: requests.Response, error: str | None = None) -> ProviderError:
    body = _json_body(response)
    code = error or body.get("error") or body.get("status") or "server_error"
    if not isinstance(code, str):
        code = "server_error"
    return ProviderError(
        clean_error_code(code),
        f"the provider responded with HTTP {response.status_code}",
        response.status_code,
    )


def revoke_github(provider: Provider, token: str, token_type_hint: str) -> None:
    """Delete the user's grant: ``DELETE /applications/{client_id}/grant``.

    GitHub authenticates the app with Basic client ID and secret and takes the access
    token in a JSON body. Deleting the grant deletes every token of the app for that
    user, so a refresh token needs no call of its own. 404 means the token is already invalid.
    """
    if token_type_hint == "refresh_token":
        log.info("GitHub refresh token dropped: the grant is deleted with the access token, provider %s", provider.id)
        return
    url = (provider.revocation_url or "").replace("{client_id}", quote(provider.client_id, safe=""))
    headers = {"Accept": "application/vnd.github+json", **_basic_auth_header(provider)}
    response = _send("DELETE", url, json={"access_token": token}, headers=headers)
    if response.status_code in (204, 404):
        return
    raise _failure(response)


def revoke_google(provider: Provider, token: str, token_type_hint: str) -> None:
    """POST the token, form-encoded and without client authentication, to Google's revoke URL.

    Google returns 400 ``invalid_token`` for a token that is already revoked or expired,
    which happens to the access token once its refresh token was revoked.
    """
    response = _send("POST", provider.revocation_url or "", data={"token": token})
    if response.status_code == 200:
        return
    if response.status_code == 400 and _json_body(response).get("error") == "invalid_token":
        return
    raise _failure(response)


def _dropbox_revoke(provider: Provider, access_token: str) -> requests.Response:
    return _send(
        "POST",
        provider.revocation_url or "",
        headers={"Authorization": f"Bearer {access_token}"},
    )


def revoke_dropbox(provider: Provider, token: str, token_type_hint: str) -> None:
    """Call ``/2/auth/token/revoke`` authenticated with the access token itself, without a body.

    Dropbox revokes the access token together with its refresh token. A refresh token is
    revoked by first exchanging it for an access token. 401 means the access token no
    longer works, which is the goal.
    """
    if token_type_hint == "refresh_token":
        session = provider_session(provider)
        try:
            token = session.refresh_token(provider.token_url, refresh_token=token)["access_token"]
        except AuthlibBaseError as error:
            if error.error == "invalid_grant":
                return
            raise
    response = _dropbox_revoke(provider, token)
    if response.status_code in (200, 401):
        return
    raise _failure(response)


def revoke_salesforce(provider: Provider, token: str, token_type_hint: str) -> None:
    """POST ``token`` form-encoded to ``/services/oauth2/revoke``; 200 means revoked.

    Salesforce returns 400 with ``invalid_token`` for a token it does not know, such as an
    access token already revoked with its refresh token.
    """
    response = _send(
        "POST",
        provider.revocation_url or "",
        data={"token": token},
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    if response.status_code == 200:
        return
    if response.status_code == 400 and _json_body(response).get("error") == "invalid_token":
        return
    raise _failure(response)


def revoke_box(provider: Provider, token: str, token_type_hint: str) -> None:
    """POST ``client_id``, ``client_secret`` and ``token`` form-encoded to ``/oauth2/revoke``."""
    response = _send(
        "POST",
        provider.revocation_url or "",
        data={"client_id": provider.client_id, "client_secret": provider.client_secret or "", "token": token},
    )
    if response.status_code == 200:
        return
    raise _failure(response)


def revoke_slack(provider: Provider, token: str, token_type_hint: str) -> None:
    """Call ``auth.revoke`` authenticated with the token to revoke.

    Slack returns HTTP 200 for most errors too and reports the outcome in ``ok``. The
    errors ``invalid_auth``, ``token_revoked`` and ``token_expired`` mean the token no longer works.
    """
    if token_type_hint == "refresh_token":
        # NOTE: the Slack documentation read for this adapter covers access tokens only,
        # so a refresh token (apps with token rotation) is dropped here without a call.
        # Whether Slack then still accepts it is not verified.
        log.info("Slack refresh token dropped without a call, provider %s", provider.id)
        return
    response = _send(
        "POST",
        provider.revocation_url or "",
        headers={"Authorization": f"Bearer {token}"},
    )
    body = _json_body(response)
    if response.status_code == 200 and body.get("ok") is True:
        return
    if body.get("error") in ("invalid_auth", "token_revoked", "token_expired", "account_inactive"):
        return
    raise _failure(response, body.get("error") if isinstance(body.get("error"), str) else None)


def revoke_hubspot(provider: Provider, token: str, token_type_hint: str) -> None:
    """DELETE the refresh token at ``/oauth/v1/refresh-tokens/{token}``.

    HubSpot has no way to revoke an access token; it stays valid until it expires
    (30 minutes), so the access token is only dropped here.
    """
    if token_type_hint == "access_token":
        log.info("HubSpot access token dropped; it expires on its own, provider %s", provider.id)
        return
    url = (provider.revocation_url or "").replace("{token}", quote(token, safe=""))
    response = _send("DELETE", url)
    if response.status_code in (200, 204, 404):
        return
    raise _failure(response)


def revoke_zendesk(provider: Provider, token: str, token_type_hint: str) -> None:
    """DELETE ``/api/v2/oauth/tokens/current.json`` authenticated with the access token."""
    if token_type_hint == "refresh_token":
        # NOTE: Zendesk documents revoking the current access token; whether that also
        # ends the refresh token is not verified, so the refresh token is only dropped here.
        log.info("Zendesk refresh token dropped without a call, provider %s", provider.id)
        return
    response = _send(
        "DELETE",
        provider.revocation_url or "",
        headers={"Authorization": f"Bearer {token}"},
    )
    if response.status_code in (200, 204, 401):
        return
    raise _failure(response)


def revoke_servicenow(provider: Provider, token: str, token_type_hint: str) -> None:
    """Request ``oauth_revoke_token.do?token=...``; 200 means the token is marked expired.

    ServiceNow documents this URL, with the access or refresh token in the query string
    and no client authentication, in "Revoke an OAuth token" of its platform security docs.
    """
    response = _send("GET", provider.revocation_url or "", params={"token": token})
    if response.status_code == 200:
        return
    raise _failure(response)


#: Revocation adapters by the name stored in ``Provider.revocation_method``.
ADAPTERS: dict[str, Adapter] = {
    "github": revoke_github,
    "google": revoke_google,
    "dropbox": revoke_dropbox,
    "salesforce": revoke_salesforce,
    "box": revoke_box,
    "slack": revoke_slack,
    "hubspot": revoke_hubspot,
    "zendesk": revoke_zendesk,
    "servicenow": revoke_servicenow,
}

#: Every value ``Provider.revocation_method`` accepts: the standard, no revocation at
#: the provider, or an adapter.
REVOCATION_METHODS = ("rfc7009", "none", *ADAPTERS)


def revoke(provider: Provider, token: str, token_type_hint: str) -> None:
    """Revoke ``token`` with the adapter named by ``provider.revocation_method``."""
    adapter = ADAPTERS.get(provider.revocation_method)
    if adapter is None:
        raise ProviderError("unsupported_revocation_method", f"no revocation adapter {provider.revocation_method!r}")
    adapter(provider, token, token_type_hint)
