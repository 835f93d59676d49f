"""Which outbound URLs an admin may enter: provider endpoints, discovery issuers, API base URLs.

The app sends client secrets and user tokens to these URLs, so the policy keeps them
off plain HTTP and away from addresses that would expose the host it runs on:

* ``https`` is required. Plain ``http`` is accepted only for loopback hosts, and only
  when ``ALLOW_HTTP_LOOPBACK`` is true (the default in development and testing).
* Link-local addresses (169.254.0.0/16, fe80::/10), cloud metadata endpoints,
  unspecified and multicast addresses are always rejected.
* Private and other non-global addresses are accepted unless ``ALLOW_PRIVATE_NETWORKS``
  is false; loopback counts as private.

A hostname is resolved and every address it resolves to must pass. Only the hostname
of the URL is looked up.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Hostnames of cloud instance metadata services (AWS, Google Cloud, Azure, Alibaba Cloud,
#: Oracle Cloud). They are rejected by name, before any lookup.
METADATA_HOSTNAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.com",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
    }
)

#: Addresses of cloud metadata services: the link-local one most clouds use
#: (169.254.169.254), AWS IMDS over IPv6 (fd00:ec2::254), Alibaba Cloud (100.100.100.200)
#: and Oracle Cloud (192.0.0.192).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address) for address in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)

LOOPBACK_HOSTNAMES = frozenset({"localhost", "localhost.localdomain"})


class URLPolicyError(ValueError):
    """The URL breaks the outbound URL policy. The message names the rule and the fix and
    reads after a field label, as in ``Token URL <message>``."""


@dataclass(frozen=True)
class URLPolicy:
    allow_http_loopback: bool
    allow_private_networks: bool

    @classmethod
    def from_config(cls) -> URLPolicy:
        config = current_app.config
        return cls(
            allow_http_loopback=bool(config.get("ALLOW_HTTP_LOOPBACK", False)),
            allow_private_networks=bool(config.get("ALLOW_PRIVATE_NETWORKS", True)),
        )


def resolve_host(hostname: str) -> list[IPAddress]:
    """Return the addresses ``hostname`` resolves to, or raise OSError when it does not resolve.

    Tests replace this function so that no test looks up a real name.
    """
    infos = socket.getaddrinfo(hostname, None, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


#: Host names that may be an IPv4 address in a legacy notation (2852039166, 0xA9FEA9FE,
#: 0251.0376.0251.0376, 169.254.43518), which HTTP clients still connect to.
LEGACY_IPV4_PATTERN = re.compile(r"[0-9a-fA-FxX.]+")


def _literal_address(hostname: str) -> IPAddress | None:
    """Return the address a host name spells out, in any notation, or None for a name."""
    try:
        return ipaddress.ip_address(hostname.split("%")[0])
    except ValueError:
        pass
    if not LEGACY_IPV4_PATTERN.fullmatch(hostname):
        return None
    try:
        # AI_NUMERICHOST parses the notations above without a DNS lookup.
        infos = socket.getaddrinfo(hostname, None, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError):
        return None
    return ipaddress.ip_address(infos[0][4][0])


def _unmapped(address: IPAddress) -> IPAddress:
    """Return the IPv4 address inside an IPv4-mapped IPv6 address (``::ffff:a.b.c.d``)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def check_address(address: IPAddress, policy: URLPolicy, hostname: str) -> None:
    """Raise URLPolicyError if the policy forbids connecting to ``address``."""
    address = _unmapped(address)
    shown = hostname if hostname == str(address) else f"{hostname} ({address})"
    if address in METADATA_ADDRESSES:
        raise URLPolicyError(f"must not point to a cloud metadata address: {shown}")
    if address.is_link_local:
        raise URLPolicyError(f"must not point to a link-local address: {shown}")
    if address.is_unspecified or address.is_multicast:
        raise URLPolicyError(f"must point to a single host, not {shown}")
    if not address.is_global and not policy.allow_private_networks:
        raise URLPolicyError(
            f"must not point to a private or loopback address ({shown}) because "
            "PERSONAL_AUTH_ALLOW_PRIVATE_NETWORKS is false"
        )


def is_loopback_host(hostname: str) -> bool:
    hostname = hostname.lower().rstrip(".")
    if hostname in LOOPBACK_HOSTNAMES or hostname.endswith(".localhost"):
        return True
    address = _literal_address(hostname)
    return address is not None and _unmapped(address).is_loopback


def check_url(url: str, policy: URLPolicy | None = None, resolve: bool = True) -> None:
    """Raise URLPolicyError if the app must not send requests to ``url``.

    With ``resolve``, a hostname that does not resolve is an error too, so an admin
    learns about a typo when saving. Requests made later skip that check and fail with
    a connection error instead.
    """
    policy = policy or URLPolicy.from_config()
    parts = urlsplit(url)
    hostname = (parts.hostname or "").lower().rstrip(".")
    if not hostname:
        raise URLPolicyError(f"{url!r} has no host")

    if parts.scheme == "http":
        if not is_loopback_host(hostname):
            raise URLPolicyError(
                "must use https. Plain http is accepted only for loopback hosts "
                "(127.0.0.1, ::1, localhost) when PERSONAL_AUTH_ALLOW_HTTP_LOOPBACK is true"
            )
        if not policy.allow_http_loopback:
            raise URLPolicyError(
                f"must use https: plain http to the loopback host {hostname} needs "
                "PERSONAL_AUTH_ALLOW_HTTP_LOOPBACK=true"
            )
    elif parts.scheme != "https":
        raise URLPolicyError(f"must use https, not {parts.scheme or 'no scheme'}")

    if hostname in METADATA_HOSTNAMES:
        raise URLPolicyError(f"must not point to a cloud metadata service: {hostname}")
    address = _literal_address(hostname)
    if address is not None:
        check_address(address, policy, hostname)
        return
    if hostname in LOOPBACK_HOSTNAMES or hostname.endswith(".localhost"):
        check_address(ipaddress.ip_address("127.0.0.1"), policy, hostname)
        return
    if not resolve:
        return

    try:
        addresses = resolve_host(hostname)
    except (OSError, UnicodeError) as error:
        log.info("Host name did not resolve: %s (%s)", hostname, error)
        raise URLPolicyError(
            f"has a host name that does not resolve: {hostname}. Check the spelling, "
            "or the DNS settings of the server this app runs on"
        ) from None
    for resolved in addresses:
        check_address(resolved, policy, hostname)


def check_request_url(url: str, policy: URLPolicy | None = None) -> None:
    """Check a URL right before a request, without failing on names that do not resolve.

    NOTE: the address is checked here and resolved again by the HTTP client, so a DNS
    answer that changes in between (DNS rebinding) is not caught.
    """
    policy = policy or URLPolicy.from_config()
    check_url(url, policy, resolve=False)
    hostname = (urlsplit(url).hostname or "").lower().rstrip(".")
    if _literal_address(hostname) is not None or is_loopback_host(hostname):
        return
    try:
        addresses = resolve_host(hostname)
    except (OSError, UnicodeError):
        return
    for resolved in addresses:
        check_address(resolved, policy, hostname)
