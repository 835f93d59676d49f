"""The admin's *Test* action: what can be checked about a provider without a user.

Three kinds of check, each reported in plain words:

* every configured endpoint responds over HTTP at all (any status counts as reachable);
* with an issuer, the server's metadata names that issuer and lists the same endpoints;
* the token endpoint accepts the client ID and secret. A token request with a made-up
  authorization code (or made-up user credentials for the password grant) cannot
  succeed; ``invalid_grant`` means the client authenticated, ``invalid_client`` means
  it did not.
"""

from __future__ import annotations

import enum
import logging
import secrets
from dataclasses import dataclass

import requests
from authlib.common.errors import AuthlibBaseError
from flask import current_app

from app import discovery, url_policy
from app.connections import redirect_uri
from app.models import GrantType, Provider
from app.oauth_client import clean_provider_text, provider_session

log = logging.getLogger(__name__)


class Status(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    #: The check could not tell, or does not apply to this provider.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    message: str


def _timeout() -> tuple[float, float]:
    config = current_app.config
    return config["HTTP_CONNECT_TIMEOUT"], config["HTTP_READ_TIMEOUT"]


def _request_url(provider: Provider, url: str) -> str:
    # Revocation adapters fill these in per request; a placeholder value is enough to
    # see whether the host responds.
    return url.replace("{client_id}", provider.client_id).replace("{token}", "check")


def check_reachable(name: str, method: str, url: str) -> CheckResult:
    """Send one request without credentials; any HTTP response means the endpoint is reachable."""
    try:
        url_policy.check_request_url(url)
    except url_policy.URLPolicyError as error:
        return CheckResult(name, Status.FAILED, f"{url} {error}.")
    try:
        response = requests.request(method, url, timeout=_timeout(), allow_redirects=False)
    except requests.Timeout:
        return CheckResult(name, Status.FAILED, f"{url} did not respond within the timeout.")
    except requests.RequestException as error:
        log.info("Endpoint check failed: %s (%s)", url, type(error).__name__)
        return CheckResult(name, Status.FAILED, f"{url} could not be reached ({type(error).__name__}).")
    return CheckResult(name, Status.PASSED, f"{url} responded with HTTP {response.status_code}.")


def check_endpoints(provider: Provider) -> list[CheckResult]:
    endpoints = [
        ("Authorization URL", "GET", provider.authorization_url),
        ("Token URL", "POST", provider.token_url),
        ("Revocation URL", "POST", provider.revocation_url),
    ]
    return [
        check_reachable(f"{label} reachable", method, _request_url(provider, url))
        for label, method, url in endpoints
        if url
    ]


def check_metadata(provider: Provider) -> list[CheckResult]:
    """Compare the configured endpoints with the ones the issuer's metadata lists."""
    name = "Metadata matches"
    if not provider.issuer:
        return [CheckResult(name, Status.UNKNOWN, "No issuer is set, so there is no metadata to compare with.")]
    try:
        metadata = discovery.fetch_metadata(provider.issuer)
    except discovery.DiscoveryError as error:
        return [CheckResult(name, Status.FAILED, str(error))]

    differences = []
    for label, configured, listed in (
        ("authorization URL", provider.authorization_url, metadata.authorization_endpoint),
        ("token URL", provider.token_url, metadata.token_endpoint),
        ("revocation URL", provider.revocation_url, metadata.revocation_endpoint),
    ):
        if configured and listed and configured != listed:
            differences.append(f"the {label} is {configured} here but {listed} in the metadata")
    if differences:
        return [CheckResult(name, Status.FAILED, f"At {metadata.source_url}: {'; '.join(differences)}.")]
    return [CheckResult(name, Status.PASSED, f"{metadata.source_url} names this issuer and the same endpoints.")]


def check_client_credentials(provider: Provider) -> CheckResult:
    """Send a token request that must fail, and read from the error whether the client authenticated."""
    name = "Client ID and secret accepted"
    try:
        url_policy.check_request_url(provider.token_url)
    except url_policy.URLPolicyError as error:
        return CheckResult(name, Status.FAILED, f"The token URL {error}.")
    session = provider_session(provider, redirect_uri=redirect_uri())
    # A redirect would send the client secret to a URL that the URL policy never checked.
    session.max_redirects = 0
    if provider.grant_type == GrantType.PASSWORD:
        grant = {
            "grant_type": "password",
            "username": f"personal-auth-check-{secrets.token_hex(4)}",
            "password": secrets.token_urlsafe(16),
        }
    else:
        grant = {"grant_type": "authorization_code", "code": f"personal-auth-check-{secrets.token_urlsafe(16)}"}

    try:
        session.fetch_token(provider.token_url, **grant)
    except AuthlibBaseError as error:
        code = clean_provider_text(error.error, [provider.client_secret])[:64]
        return _credentials_result(name, code)
    except requests.Timeout:
        return CheckResult(name, Status.FAILED, "The token URL did not respond within the timeout.")
    except requests.TooManyRedirects:
        return CheckResult(
            name, Status.FAILED, "The token URL redirects elsewhere. Enter the URL that the redirect leads to."
        )
    except requests.RequestException as error:
        return CheckResult(name, Status.FAILED, f"The token URL could not be reached ({type(error).__name__}).")
    except ValueError:
        return CheckResult(name, Status.UNKNOWN, "The token URL responded with something that is not JSON.")
    return CheckResult(name, Status.UNKNOWN, "The token URL accepted a made-up grant, which it should not.")


#: Error codes that a token endpoint returns only after the client authenticated. GitHub
#: uses its own code, bad_verification_code, for an unknown authorization code.
AUTHENTICATED_ERRORS = ("invalid_grant", "unauthorized_client", "unsupported_grant_type", "bad_verification_code")
#: Error codes for rejected client credentials: the standard one and GitHub's.
CLIENT_REJECTED_ERRORS = ("invalid_client", "incorrect_client_credentials")


def _credentials_result(name: str, code: str) -> CheckResult:
    if code in AUTHENTICATED_ERRORS:
        return CheckResult(
            name, Status.PASSED, f"The token URL returned {code} for a made-up grant, so the client authenticated."
        )
    if code in CLIENT_REJECTED_ERRORS:
        return CheckResult(
            name,
            Status.FAILED,
            f"The token URL returned {code}: the client ID or secret is wrong, or the client "
            "authentication method differs from the one the provider expects.",
        )
    return CheckResult(
        name,
        Status.UNKNOWN,
        f"The token URL returned {code or 'an error without a code'}, which does not tell whether "
        "the client authenticated.",
    )


def run_checks(provider: Provider) -> list[CheckResult]:
    """Run every check on ``provider`` and return the results in display order."""
    log.info("Provider checks started: provider %s (%s)", provider.id, provider.name)
    results = [*check_endpoints(provider), *check_metadata(provider), check_client_credentials(provider)]
    failed = sum(result.status == Status.FAILED for result in results)
    log.info("Provider checks finished: provider %s, %s of %s failed", provider.id, failed, len(results))
    return results
