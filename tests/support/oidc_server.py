"""Run the oidc-provider test server (tests/oidc_server) and drive its sign-in pages.

The server is a Node.js process that listens on 127.0.0.1 only. It needs
``npm ci`` to have been run in tests/oidc_server. Its devInteractions pages
accept any login and password, so ``sign_in_and_consent`` can complete the
authorization step without a browser.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import parse_qs, quote_plus, urljoin, urlsplit

import requests

SERVER_DIR = Path(__file__).resolve().parent.parent / "oidc_server"
SERVER_SCRIPT = SERVER_DIR / "server.mjs"

LISTEN_HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 5.0
HTTP_TIMEOUT_SECONDS = 10.0

# Maximum number of requests in one authorization run. Sign-in with consent
# takes seven: authorize, login page, login form, resume, consent page,
# consent form, resume.
MAX_INTERACTION_STEPS = 25

# Number of server output lines kept for error messages.
OUTPUT_TAIL_LINES = 200


class OidcProviderServerError(RuntimeError):
    """The test authorization server failed to start or returned an unexpected response."""


class OidcProviderDependencyError(OidcProviderServerError):
    """Node.js or the npm packages for the test authorization server are missing."""


class InteractionError(RuntimeError):
    """The sign-in pages did not lead to a redirect to the client."""


def check_dependencies() -> None:
    """Raise OidcProviderDependencyError if node or the server's npm packages are missing."""
    if shutil.which("node") is None:
        raise OidcProviderDependencyError(
            "node not found on PATH: install Node.js 20 or later to run the test authorization server"
        )
    if not (SERVER_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
        raise OidcProviderDependencyError(f"node_modules missing: run npm ci in {SERVER_DIR}")


def _pick_free_port() -> int:
    # The port is free when checked. Another process could take it before the
    # server binds it, in which case start() fails with the server's message.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LISTEN_HOST, 0))
        return sock.getsockname()[1]


class OidcProviderServer:
    """An oidc-provider authorization server running as a child process.

    ``clients`` is a list of client metadata objects as oidc-provider takes
    them (client_id, client_secret, redirect_uris, token_endpoint_auth_method,
    grant_types). A client without grant_types gets authorization_code and
    refresh_token. TTLs are in seconds. ``user_groups`` maps a login to the
    groups released in its ``groups`` claim; ``set_user_groups`` changes the
    map while the server runs.
    """

    def __init__(
        self,
        clients: list[dict[str, Any]],
        access_token_ttl: int = 3600,
        refresh_token_ttl: int = 86400,
        extra_scopes: list[str] | None = None,
        user_groups: dict[str, list[str]] | None = None,
    ) -> None:
        self.clients = clients
        self.user_groups = dict(user_groups or {})
        self._groups_file: Path | None = None
        self.access_token_ttl = access_token_ttl
        self.refresh_token_ttl = refresh_token_ttl
        self.extra_scopes = list(extra_scopes or [])
        self.port: int | None = None
        # Exit code of the last server process, set by stop().
        self.returncode: int | None = None
        self._process: subprocess.Popen[str] | None = None
        self._output: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)
        self._ready_line: str | None = None
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None
        self._discovery: dict[str, Any] | None = None

    # Lifecycle

    def start(self) -> None:
        """Start the server, wait for its READY line and load its discovery document."""
        if self._process is not None:
            raise OidcProviderServerError("server already started")
        check_dependencies()

        self.port = _pick_free_port()
        issuer = f"http://{LISTEN_HOST}:{self.port}"
        descriptor, groups_path = tempfile.mkstemp(prefix="oidc-groups-", suffix=".json")
        os.close(descriptor)
        self._groups_file = Path(groups_path)
        self._write_user_groups()
        environment = {
            **os.environ,
            "OIDC_PORT": str(self.port),
            "OIDC_ISSUER": issuer,
            "OIDC_CLIENTS": json.dumps(self.clients),
            "OIDC_ACCESS_TOKEN_TTL": str(self.access_token_ttl),
            "OIDC_REFRESH_TOKEN_TTL": str(self.refresh_token_ttl),
            "OIDC_EXTRA_SCOPES": " ".join(self.extra_scopes),
            "OIDC_USER_GROUPS_FILE": str(self._groups_file),
        }
        self.returncode = None
        self._output.clear()
        self._ready.clear()
        self._ready_line = None
        # stderr is merged into stdout so a single thread can drain both. An
        # undrained pipe would block the server once its buffer fills.
        self._process = subprocess.Popen(
            ["node", str(SERVER_SCRIPT)],
            cwd=SERVER_DIR,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(
            target=self._read_output,
            args=(self._process.stdout,),
            name="oidc-server-output",
            daemon=True,
        )
        self._reader.start()

        try:
            self._wait_until_ready(issuer)
            self._discovery = self._fetch_discovery(issuer)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Send SIGTERM, wait up to 5 s, then kill the server. Does nothing if it is not running."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.returncode = process.returncode
        if self._reader is not None:
            self._reader.join(timeout=STOP_TIMEOUT_SECONDS)
        self._process = None
        self._reader = None
        self._discovery = None
        if self._groups_file is not None:
            self._groups_file.unlink(missing_ok=True)
            self._groups_file = None

    def set_user_groups(self, user_groups: dict[str, list[str]]) -> None:
        """Replace the groups of every login; the next claims request uses them."""
        self.user_groups = dict(user_groups)
        self._write_user_groups()

    def _write_user_groups(self) -> None:
        if self._groups_file is None:
            return
        # Written to a new file and renamed, so the server never reads half a file.
        partial = self._groups_file.with_suffix(".partial")
        partial.write_text(json.dumps(self.user_groups))
        partial.replace(self._groups_file)

    def __enter__(self) -> OidcProviderServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _read_output(self, stream: IO[str]) -> None:
        for line in stream:
            line = line.rstrip("\n")
            self._output.append(line)
            if not self._ready.is_set() and line.startswith("READY "):
                self._ready_line = line
                self._ready.set()
        # Wake a waiting start() when the process exits without READY.
        self._ready.set()

    def _wait_until_ready(self, issuer: str) -> None:
        if not self._ready.wait(timeout=START_TIMEOUT_SECONDS):
            raise OidcProviderServerError(
                f"oidc-provider test server timed out after {START_TIMEOUT_SECONDS:.0f} s "
                f"without printing READY\n{self.output}"
            )
        if self._ready_line is None:
            assert self._process is not None
            exit_code = self._process.wait(timeout=STOP_TIMEOUT_SECONDS)
            raise OidcProviderServerError(
                f"oidc-provider test server exited with code {exit_code} before it was ready\n{self.output}"
            )
        if self._ready_line != f"READY {issuer}":
            raise OidcProviderServerError(
                f"oidc-provider test server printed {self._ready_line!r}, expected 'READY {issuer}'"
            )

    def _fetch_discovery(self, issuer: str) -> dict[str, Any]:
        url = f"{issuer}/.well-known/openid-configuration"
        try:
            response = requests.get(url, timeout=HTTP_TIMEOUT_SECONDS)
            response.raise_for_status()
            return response.json()
        except (requests.RequestException, ValueError) as error:
            raise OidcProviderServerError(f"failed to load discovery document {url}: {error}\n{self.output}") from error

    # Metadata

    @property
    def output(self) -> str:
        """Last lines the server wrote to stdout and stderr."""
        return "\n".join(self._output)

    @property
    def discovery(self) -> dict[str, Any]:
        """The server's /.well-known/openid-configuration document."""
        if self._discovery is None:
            raise OidcProviderServerError("server not started: call start() first")
        return self._discovery

    def _endpoint(self, name: str) -> str:
        value = self.discovery.get(name)
        if not value:
            raise OidcProviderServerError(f"discovery document has no {name}")
        return value

    @property
    def issuer(self) -> str:
        return self._endpoint("issuer")

    @property
    def authorization_endpoint(self) -> str:
        return self._endpoint("authorization_endpoint")

    @property
    def token_endpoint(self) -> str:
        return self._endpoint("token_endpoint")

    @property
    def revocation_endpoint(self) -> str:
        return self._endpoint("revocation_endpoint")

    @property
    def introspection_endpoint(self) -> str:
        return self._endpoint("introspection_endpoint")


# Sign-in pages


class _Form:
    def __init__(self, action: str, method: str) -> None:
        self.action = action
        self.method = method
        self.fields: dict[str, str] = {}


class _PageParser(HTMLParser):
    """Collects forms with their input fields and links with their text."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []
        self.links: list[tuple[str, str]] = []
        self._form: _Form | None = None
        self._link_href: str | None = None
        self._link_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._form = _Form(attributes.get("action", ""), attributes.get("method", "get").lower())
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None and attributes.get("name"):
            self._form.fields[attributes["name"]] = attributes.get("value", "")
        elif tag == "a" and "href" in attributes:
            self._link_href = attributes["href"]
            self._link_text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "a" and self._link_href is not None:
            self.links.append((self._link_href, "".join(self._link_text).strip()))
            self._link_href = None

    def handle_data(self, data: str) -> None:
        if self._link_href is not None:
            self._link_text.append(data)


def _same_origin(first: str, second: str) -> bool:
    a, b = urlsplit(first), urlsplit(second)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def _page_text(html: str, limit: int = 500) -> str:
    text = " ".join(html.split())
    return text[:limit]


def _run_authorization(authorize_url: str, login: str, password: str, *, deny: bool) -> str:
    """Follow the authorization URL through the devInteractions pages.

    Returns the first redirect that leaves the authorization server's origin,
    which is the client's redirect_uri with the response parameters. That URL
    is not requested.
    """
    session = requests.Session()
    method, url, data = "GET", authorize_url, None
    consent_cancelled = False

    for _ in range(MAX_INTERACTION_STEPS):
        response = session.request(method, url, data=data, allow_redirects=False, timeout=HTTP_TIMEOUT_SECONDS)

        if response.is_redirect:
            location = urljoin(response.url, response.headers["Location"])
            if not _same_origin(location, authorize_url):
                if deny and not consent_cancelled:
                    raise InteractionError(
                        f"authorization redirected to the client before the consent page: {location}"
                    )
                return location
            method, url, data = "GET", location, None
            continue

        if response.status_code != 200:
            raise InteractionError(
                f"authorization server returned HTTP {response.status_code} for {method} {url}: "
                f"{_page_text(response.text)}"
            )

        page = _PageParser()
        page.feed(response.text)
        page.close()
        form = next((f for f in page.forms if f.fields.get("prompt") in ("login", "consent")), None)
        if form is None:
            raise InteractionError(f"no login or consent form on the page at {url}: {_page_text(response.text)}")

        prompt = form.fields["prompt"]
        if deny and prompt == "consent":
            cancel = next((href for href, text in page.links if "cancel" in text.lower()), None)
            if cancel is None:
                raise InteractionError(f"no Cancel link on the consent page at {url}")
            method, url, data = "GET", urljoin(response.url, cancel), None
            consent_cancelled = True
            continue

        fields = dict(form.fields)
        if prompt == "login":
            fields["login"] = login
            fields["password"] = password
        method = form.method.upper()
        url = urljoin(response.url, form.action)
        data = fields

    raise InteractionError(f"authorization did not redirect to the client within {MAX_INTERACTION_STEPS} steps")


def sign_in_and_consent(authorize_url: str, login: str = "alice", password: str = "any") -> str:
    """Sign in and grant consent on the devInteractions pages with a fresh session.

    Returns the redirect URL to the client's redirect_uri (carrying code,
    state and iss) without requesting it, because that URL belongs to the app
    under test. The login becomes the account id, so it is the token's ``sub``.
    """
    return _run_authorization(authorize_url, login, password, deny=False)


def deny_consent(authorize_url: str, login: str = "alice", password: str = "any") -> str:
    """Sign in, then follow the consent page's Cancel link with a fresh session.

    Returns the redirect URL to the client's redirect_uri carrying
    ``error=access_denied`` and the state, without requesting it.
    """
    return _run_authorization(authorize_url, login, password, deny=True)


def redirect_parameters(redirect_url: str) -> dict[str, str]:
    """Return the query parameters of a redirect URL, one value per name."""
    return {name: values[0] for name, values in parse_qs(urlsplit(redirect_url).query).items()}


def client_basic_auth(client_id: str, client_secret: str) -> tuple[str, str]:
    """Return a requests ``auth`` tuple for client_secret_basic.

    RFC 6749 section 2.3.1 requires the client id and secret to be
    form-urlencoded before Basic encoding, and oidc-provider decodes them.
    """
    return quote_plus(client_id), quote_plus(client_secret)


def introspect(server: OidcProviderServer, client_id: str, client_secret: str, token: str) -> dict[str, Any]:
    """Introspect a token (RFC 7662) with HTTP Basic client authentication."""
    response = requests.post(
        server.introspection_endpoint,
        data={"token": token},
        auth=client_basic_auth(client_id, client_secret),
        timeout=HTTP_TIMEOUT_SECONDS,
    )
    if response.status_code != 200:
        raise OidcProviderServerError(f"introspection failed with HTTP {response.status_code}: {response.text[:500]}")
    return response.json()
