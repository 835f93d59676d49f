"""No token, code, secret or password reaches a log line, at any level."""

import logging

import pytest

from app.logs import RedactingFilter, RedactingFormatter, redact
from tests.conftest import PASSWORD, PASSWORD_CLIENT_SECRET, PROVIDER_PASSWORD, PROVIDER_USERNAME
from tests.test_revocation import current_credential


def test_flows_log_no_secret_at_debug(caplog, auth, user, password_integration, password_server):
    caplog.set_level(logging.DEBUG)
    auth.login("alice")
    auth.post(
        f"/connect/{password_integration.id}/password",
        {"username": PROVIDER_USERNAME, "password": PROVIDER_PASSWORD, "display": "popup"},
        token_from=f"/connect/{password_integration.id}?display=popup",
    )
    credential = current_credential()
    secrets = [credential.access_token, credential.refresh_token, PROVIDER_PASSWORD, PASSWORD, PASSWORD_CLIENT_SECRET]
    password_server.revocation_status = 503
    auth.post(f"/integrations/{password_integration.id}/revoke", htmx=True)
    password_server.revocation_status = None
    auth.post(f"/integrations/{password_integration.id}/revoke", htmx=True)

    assert "Tokens stored" in caplog.text
    assert "Revocation of refresh_token failed" in caplog.text
    for secret in secrets:
        assert secret not in caplog.text


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        (
            '127.0.0.1 - - "GET /oauth/callback?code=SplxlOBeZQQYbYS6WxSbIA&state=xyz123 HTTP/1.1" 302 -',
            "SplxlOBeZQQYbYS6WxSbIA",
        ),
        ("body: grant_type=refresh_token&refresh_token=tGzv3JOkF0XG5Qx2TlKWIA", "tGzv3JOkF0XG5Qx2TlKWIA"),
        ('{"access_token": "2YotnFZFEjr1zCsicMWpAA", "token_type": "Bearer"}', "2YotnFZFEjr1zCsicMWpAA"),
        ("Authorization: Bearer mF_9.B5f-4.1JqM", "mF_9.B5f-4.1JqM"),
        ("Authorization: Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW", "czZCaGRSa3F0MzpnWDFmQmF0M2JW"),
        ("password=hunter2-is-long&username=alice", "hunter2-is-long"),
    ],
)
def test_redact_masks_secret(line, secret):
    assert secret not in redact(line)


def test_redacting_filter_rewrites_record():
    record = logging.LogRecord(
        "werkzeug", logging.INFO, __file__, 1, "%s", ("GET /oauth/callback?code=abc&state=def",), None
    )
    RedactingFilter().filter(record)
    assert record.getMessage() == "GET /oauth/callback?code=[redacted]&state=[redacted]"


def test_redacting_formatter_covers_tracebacks():
    try:
        raise ValueError("refresh_token=tGzv3JOkF0XG5Qx2TlKWIA rejected")
    except ValueError as error:
        record = logging.LogRecord(
            "app", logging.ERROR, __file__, 1, "failed", None, (type(error), error, error.__traceback__)
        )
    assert "tGzv3JOkF0XG5Qx2TlKWIA" not in RedactingFormatter().format(record)


def test_colour_codes_dropped_from_request_lines():
    record = logging.LogRecord(
        "werkzeug",
        logging.INFO,
        __file__,
        1,
        "%s",
        ('"\x1b[32mPOST /integrations/1/revoke HTTP/1.1\x1b[0m" 200 -',),
        None,
    )
    RedactingFilter().filter(record)
    assert record.getMessage() == '"POST /integrations/1/revoke HTTP/1.1" 200 -'
