"""Fetching an image from a URL someone else gave us, without becoming their proxy.

A server that fetches URLs for its clients can be pointed at what only the server can reach:
``127.0.0.1``, the LAN, a cloud's metadata service at ``169.254.169.254`` (SSRF). So
:func:`fetch_url`:

* accepts ``http`` and ``https`` only (no ``file:``, ``ftp:``, ``gopher:``…);
* resolves the host itself and refuses private, loopback, link-local, multicast, reserved,
  unspecified, shared (CGNAT) and IPv4-mapped/embedded addresses unless the policy allows
  private addresses — if *any* address of the name is refused, the name is refused;
* connects to the address it vetted (not to the name again), so a DNS answer that changes
  between the check and the connection (DNS rebinding) cannot redirect it; TLS still checks
  the certificate against the host name;
* follows redirects itself, vetting every hop the same way, at most ``max_redirects``;
* caps the body (a ``Content-Length`` over the cap is refused before reading; the bytes
  are counted as they arrive) and the total time (a watchdog shuts the socket down at the
  deadline, and every body read waits no longer than the time left, so a server trickling
  one byte at a time cannot hold it longer, whatever its HTTP version or ``Connection``).

Errors: :class:`~cleancut.errors.UrlRefusedError` (the policy forbids it) and
:class:`~cleancut.errors.UrlFetchError` (allowed, but it could not be fetched).
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from ._version import __version__
from .errors import InvalidOptionError, UrlFetchError, UrlRefusedError

__all__ = ["UrlPolicy", "check_address", "fetch_url"]

_SCHEMES: Final = {"http": 80, "https": 443}
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_BLOCK: Final = 1 << 16
_USER_AGENT: Final = f"cleancut/{__version__}"
#: Longest URL accepted (browsers and servers commonly stop near 8 KiB).
_MAX_URL: Final = 8192

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class UrlPolicy:
    """What :func:`fetch_url` may fetch.

    ``allow_private``: also allow loopback, private, link-local and other non-public
    addresses (off by default; env ``CLEANCUT_URL_ALLOW_PRIVATE=1``). ``allowed_networks``:
    narrower than that, only these networks (CIDR, e.g. ``10.1.2.0/24``; env
    ``CLEANCUT_URL_ALLOW_NETWORKS``, comma-separated). ``max_bytes``: largest
    body (env ``CLEANCUT_URL_MAX_BYTES``). ``timeout``: seconds for the whole fetch, redirects
    included (env ``CLEANCUT_URL_TIMEOUT``). ``max_redirects``: hops followed.
    """

    allow_private: bool = False
    max_bytes: int = 50 * 1024 * 1024
    timeout: float = 30.0
    max_redirects: int = 5
    allowed_networks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        try:
            nets = tuple(ipaddress.ip_network(n.strip(), strict=False) for n in self.allowed_networks)
        except ValueError as exc:
            raise InvalidOptionError(f"allowed_networks: {exc}") from None
        object.__setattr__(self, "_networks", nets)
        if self.max_bytes < 1:
            raise InvalidOptionError(f"max_bytes must be positive, got {self.max_bytes}")
        if not self.timeout > 0:
            raise InvalidOptionError(f"timeout must be positive, got {self.timeout}")
        if self.max_redirects < 0:
            raise InvalidOptionError(f"max_redirects must be 0 or more, got {self.max_redirects}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> UrlPolicy:
        from .config import parse_env_bool

        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if "CLEANCUT_URL_ALLOW_PRIVATE" in env:
            values["allow_private"] = parse_env_bool(
                "CLEANCUT_URL_ALLOW_PRIVATE", env["CLEANCUT_URL_ALLOW_PRIVATE"]
            )
        if env.get("CLEANCUT_URL_ALLOW_NETWORKS"):
            values["allowed_networks"] = tuple(
                n for n in env["CLEANCUT_URL_ALLOW_NETWORKS"].split(",") if n.strip()
            )
        for name, key, kind in (
            ("CLEANCUT_URL_MAX_BYTES", "max_bytes", int),
            ("CLEANCUT_URL_TIMEOUT", "timeout", float),
        ):
            if env.get(name):
                try:
                    values[key] = kind(env[name])
                except ValueError:
                    raise InvalidOptionError(f"{name}={env[name]!r} is not a number") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def allows_network(self, ip: IPAddress) -> bool:
        """Whether ``ip`` lies in one of ``allowed_networks``."""
        networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = getattr(self, "_networks", ())
        return any(ip.version == net.version and ip in net for net in networks)

    def with_(self, **changes: Any) -> UrlPolicy:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


# --------------------------------------------------------------------------- addresses


def _why_forbidden(ip: IPAddress) -> str | None:
    """Why a non-public address is refused, or None if it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address"
        for embedded in (ip.sixtofour, ip.teredo[1] if ip.teredo else None):
            if embedded is not None and _why_forbidden(embedded) is not None:
                return "an IPv6 address embedding a non-public IPv4 address"
        if ip in ipaddress.IPv6Network("64:ff9b::/96"):  # NAT64: reaches any IPv4 address
            return "a NAT64 address"
    checks = (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address (cloud metadata services live there)"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "not a public address"),
    )
    for hit, reason in checks:
        if hit:
            return reason
    return None


def check_address(ip: IPAddress, policy: UrlPolicy, host: str) -> None:
    """Raise :class:`UrlRefusedError` if the policy forbids connecting to ``ip``."""
    if ip.is_multicast or ip.is_unspecified:  # never a TCP peer, whatever the policy
        raise UrlRefusedError(f"{host} resolves to {ip}, {_why_forbidden(ip)}; it cannot be fetched")
    if policy.allow_private or policy.allows_network(ip):
        return
    reason = _why_forbidden(ip)
    if reason is not None:
        raise UrlRefusedError(
            f"{host} resolves to {ip}, {reason}; fetching it is refused "
            "(only public addresses are allowed; the server setting for private addresses "
            "is off)"
        )


def _resolve(host: str, port: int, policy: UrlPolicy, deadline: float) -> list[IPAddress]:
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        # getaddrinfo has no timeout of its own; the OS resolver's (a few seconds) applies.
        if time.monotonic() > deadline:
            raise UrlFetchError(f"no answer from {host} within {policy.timeout:g} s")
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise UrlFetchError(f"cannot resolve host {host!r}: {exc}") from exc
        addresses = []
        for info in infos:
            ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])  # drop an IPv6 zone
            if ip not in addresses:
                addresses.append(ip)
        if not addresses:
            raise UrlFetchError(f"host {host!r} has no address")
    for ip in addresses:  # one forbidden answer refuses the name: no picking and choosing
        check_address(ip, policy, host)
    return addresses


# --------------------------------------------------------------------------- connections


def _shut(sock: socket.socket) -> None:
    """End every blocking read on ``sock`` at once (from any thread)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed, or never connected
        pass


class _Watchdog:
    """Ends a fetch at its deadline: shuts the connection's socket down, which ends any
    blocking read at once.

    The watchdog keeps its own reference to the socket (handed over by the connection as soon
    as it exists): ``http.client`` drops ``conn.sock`` once the headers of an HTTP/1.0 or
    ``Connection: close`` answer are read, and the body is then read through the response
    alone, so ``conn.sock`` cannot be relied on to reach it. Reads are also given socket
    timeouts no longer than the time left (:meth:`bound`), so even a late timer thread
    cannot let a fetch outlive its deadline by more than one read.
    """

    def __init__(self, deadline: float) -> None:
        self.fired = False
        self.deadline = deadline
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._timer = threading.Timer(max(deadline - time.monotonic(), 0.0), self._fire)
        self._timer.daemon = True

    def adopt(self, sock: socket.socket) -> None:
        """Watch ``sock``; if the deadline has already passed, shut it down at once."""
        with self._lock:
            self._sock = sock
            fired = self.fired
        if fired:
            _shut(sock)

    def bound(self) -> None:
        """Limit the next blocking read to the time left (raise if none is left)."""
        remaining = self.deadline - time.monotonic()
        with self._lock:
            sock = self._sock
        if remaining <= 0:
            self._fire()
            raise TimeoutError("deadline")
        if sock is not None:
            sock.settimeout(remaining)

    @property
    def expired(self) -> bool:
        return self.fired or time.monotonic() >= self.deadline

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            sock = self._sock
        if sock is not None:
            _shut(sock)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to a vetted address, sending the URL's own Host header; its socket
    is handed to the watchdog the moment it exists."""

    def __init__(self, host: str, port: int, ip: IPAddress, watchdog: _Watchdog) -> None:
        super().__init__(host, port, timeout=max(watchdog.deadline - time.monotonic(), 0.001))
        self._ip = ip
        self._watchdog = watchdog

    def connect(self) -> None:
        self.sock = socket.create_connection((str(self._ip), self.port), self.timeout)
        self._watchdog.adopt(self.sock)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """An HTTPS connection to a vetted address; the certificate is checked for the host name."""

    def __init__(
        self, host: str, port: int, ip: IPAddress, watchdog: _Watchdog, context: ssl.SSLContext
    ) -> None:
        timeout = max(watchdog.deadline - time.monotonic(), 0.001)
        super().__init__(host, port, timeout=timeout, context=context)
        self._ip = ip
        self._ssl = context
        self._watchdog = watchdog

    def connect(self) -> None:
        sock = socket.create_connection((str(self._ip), self.port), self.timeout)
        try:
            # Wrapped without the handshake, so that the watchdog holds the TLS socket (the
            # plain one is detached by wrapping) before a slow handshake can begin.
            tls = self._ssl.wrap_socket(sock, server_hostname=self.host, do_handshake_on_connect=False)
        except BaseException:
            sock.close()
            raise
        self.sock = tls
        self._watchdog.adopt(tls)
        tls.do_handshake()


def _split(url: str) -> tuple[str, str, int, str]:
    """Scheme, host, port and request target of an acceptable URL."""
    if len(url) > _MAX_URL:
        raise UrlRefusedError(f"the URL is {len(url)} characters long; at most {_MAX_URL} are accepted")
    if any(c in url for c in "\r\n\t\x00 "):
        raise UrlRefusedError("the URL contains whitespace or control characters")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefusedError(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        shown = f"{scheme}:" if scheme else "no scheme"
        raise UrlRefusedError(f"only http:// and https:// URLs can be fetched, got {shown}")
    if parts.username is not None or parts.password is not None:
        raise UrlRefusedError("URLs with credentials (user:password@host) are not accepted")
    host = parts.hostname
    if not host:
        raise UrlRefusedError(f"the URL {url[:200]!r} has no host")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return scheme, host, port or _SCHEMES[scheme], target


def fetch_url(url: str, policy: UrlPolicy | None = None) -> bytes:
    """GET ``url`` under ``policy`` (default: :meth:`UrlPolicy.from_env`) and return the body.

    Raises :class:`UrlRefusedError` for what the policy forbids (scheme, address, a redirect
    to a forbidden place, too many redirects, a body over ``max_bytes``) and
    :class:`UrlFetchError` when an allowed URL cannot be fetched (DNS, connection, HTTP error
    status, over ``timeout``).
    """
    policy = policy if policy is not None else UrlPolicy.from_env()
    deadline = time.monotonic() + policy.timeout
    context: ssl.SSLContext | None = None
    current = url
    for _hop in range(policy.max_redirects + 1):
        scheme, host, port, target = _split(current)
        addresses = _resolve(host, port, policy, deadline)
        if scheme == "https" and context is None:
            context = ssl.create_default_context()
        status, location, body = _get(scheme, host, port, target, addresses, policy, deadline, context)
        if status in _REDIRECTS:
            if location is None:
                raise UrlFetchError(f"{current[:200]} answered a redirect ({status}) without a Location")
            current = urllib.parse.urljoin(current, location)
            continue
        if not 200 <= status < 300:
            raise UrlFetchError(f"{current[:200]} answered HTTP {status}")
        assert body is not None
        return body
    raise UrlRefusedError(f"more than {policy.max_redirects} redirects starting at {url[:200]}")


def _get(
    scheme: str,
    host: str,
    port: int,
    target: str,
    addresses: list[IPAddress],
    policy: UrlPolicy,
    deadline: float,
    context: ssl.SSLContext | None,
) -> tuple[int, str | None, bytes | None]:
    """One GET to the first vetted address that accepts a connection: the status, the
    redirect target (for 3xx) and the body (for everything else)."""
    last: Exception | None = None
    for ip in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        watchdog = _Watchdog(deadline)
        conn: http.client.HTTPConnection
        if scheme == "https":
            assert context is not None
            conn = _PinnedHTTPS(host, port, ip, watchdog, context)
        else:
            conn = _PinnedHTTP(host, port, ip, watchdog)
        try:
            with watchdog:
                try:
                    conn.request(
                        "GET",
                        target,
                        headers={
                            "User-Agent": _USER_AGENT,
                            "Accept": "image/*",
                            "Accept-Encoding": "identity",
                        },
                    )
                except (OSError, http.client.HTTPException) as exc:
                    if watchdog.expired:
                        break
                    last = exc  # refused or unreachable: try the next vetted address
                    continue
                return _answer(conn, host, policy, watchdog)
        except (OSError, http.client.HTTPException) as exc:
            if watchdog.expired:
                break
            raise UrlFetchError(f"fetching from {host} failed: {exc}") from exc
        finally:
            conn.close()
    if last is None or time.monotonic() >= deadline:
        raise UrlFetchError(f"no complete answer from {host} within {policy.timeout:g} s")
    raise UrlFetchError(f"cannot connect to {host}: {last}") from last


def _answer(
    conn: http.client.HTTPConnection, host: str, policy: UrlPolicy, watchdog: _Watchdog
) -> tuple[int, str | None, bytes | None]:
    resp = conn.getresponse()
    if resp.status in _REDIRECTS:
        return resp.status, resp.getheader("Location"), None
    if not 200 <= resp.status < 300:
        return resp.status, None, None
    declared = resp.getheader("Content-Length")
    if declared is not None and declared.strip().isdigit() and int(declared) > policy.max_bytes:
        raise UrlRefusedError(
            f"{host} declares {int(declared):,} bytes, over the limit of {policy.max_bytes:,} bytes"
        )
    parts: list[bytes] = []
    size = 0
    while True:
        watchdog.bound()
        block = resp.read1(_BLOCK)
        if not block:
            break
        size += len(block)
        if size > policy.max_bytes:
            raise UrlRefusedError(f"the answer from {host} is over the limit of {policy.max_bytes:,} bytes")
        parts.append(block)
    if watchdog.expired:  # the read ended because the watchdog cut the connection
        raise OSError("deadline")
    if resp.length:  # the connection ended before the declared length, without an error
        raise UrlFetchError(f"the answer from {host} ended before its Content-Length")
    return resp.status, None, b"".join(parts)
