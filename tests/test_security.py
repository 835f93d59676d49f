import pytest

from app.security import SECURITY_HEADERS


@pytest.mark.parametrize("path", ["/login", "/", "/static/js/app.js", "/no-such-page"])
def test_security_headers_on_every_response(client, path):
    response = client.get(path)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name


def test_csp_forbids_inline_script_and_eval(client):
    policy = client.get("/login").headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy


def test_pages_have_no_inline_script(auth, client, user):
    auth.login("alice")
    for path in ("/", "/login"):
        html = client.get(path).get_data(as_text=True)
        assert "<script>" not in html
        assert " onclick=" not in html
        assert "style=" not in html


def test_not_found_page_hides_internals(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert "Traceback" not in response.get_data(as_text=True)


def test_html_responses_not_cached(client):
    assert client.get("/login").headers["Cache-Control"] == "no-store"
