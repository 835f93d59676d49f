"""Keeping access tokens fresh with the refresh token grant."""

from __future__ import annotations

import logging
from datetime import timedelta

from authlib.common.errors import AuthlibBaseError
from flask import current_app
from requests import RequestException

from app.extensions import db
from app.models import Credential, utcnow
from app.oauth_client import ProviderError, parse_token_response, provider_error_from, provider_session

log = logging.getLogger(__name__)


class RefreshError(Exception):
    """A refresh failed. ``permanent`` is true when retrying cannot help (``invalid_grant``)."""

    def __init__(self, message: str, permanent: bool):
        super().__init__(message)
        self.message = message
        self.permanent = permanent


def needs_refresh(credential: Credential) -> bool:
    margin = timedelta(seconds=current_app.config.get("REFRESH_MARGIN", 300))
    expires_at = credential.access_token_expires_at
    return credential.access_token_ciphertext is None or (expires_at is not None and expires_at - utcnow() <= margin)


def ensure_fresh_token(credential: Credential) -> Credential:
    """Return the credential with an access token that is not about to expire.

    TODO: single flight across processes; this first version refreshes without a lock.
    """
    if not needs_refresh(credential):
        return credential
    refresh_token = credential.refresh_token
    if refresh_token is None:
        raise RefreshError("the access token expired and there is no refresh token", permanent=True)

    provider = credential.integration.provider
    session = provider_session(provider)
    try:
        token = session.refresh_token(provider.token_url, refresh_token=refresh_token)
        token_set = parse_token_response(token)
    except (AuthlibBaseError, RequestException, ValueError, ProviderError) as exception:
        failure = provider_error_from(exception, [refresh_token, provider.client_secret])
        raise RefreshError(failure.message, permanent=failure.error == "invalid_grant") from None

    credential.access_token = token_set.access_token
    credential.access_token_expires_at = token_set.access_token_expires_at
    if token_set.refresh_token is not None:
        credential.refresh_token = token_set.refresh_token
    db.session.commit()
    return credential
