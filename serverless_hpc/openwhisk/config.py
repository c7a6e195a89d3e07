"""OpenWhisk credentials, found the way ``wsk`` finds them, and kept out of every output.

Sources, lowest precedence first (``wsk``'s own order, plus the ``__OW_*`` variables that
OpenWhisk sets inside actions and that its JavaScript client reads):

1. defaults: namespace ``_``, API version ``v1``;
2. the properties file: ``$WSK_CONFIG_FILE`` if set, else ``~/.wskprops`` (``KEY=VALUE``
   lines: ``APIHOST``, ``AUTH``, ``NAMESPACE``, ``APIVERSION``; ``#`` comments);
3. ``__OW_API_HOST``, ``__OW_API_KEY``, ``__OW_NAMESPACE``;
4. ``WHISK_APIHOST``, ``WHISK_AUTH``, ``WHISK_NAMESPACE``, ``WHISK_APIVERSION``;
5. explicit arguments (the CLI's flags).

An ``APIHOST`` without a scheme means https, as in ``wsk``. ``insecure`` (``wsk -i``) turns
off certificate verification for self-signed hosts; it is never read from the file, because
``wsk`` does not store it there either.

The AUTH key (``uuid:key``) lives only in :class:`Credentials`, whose ``repr`` and ``str``
mask it; error messages name the file and line, never the line's content. Every AUTH value
read (and a password inside an APIHOST URL) is registered with
:func:`serverless_hpc.redact.register`, so no output shows it whatever form a controller
echoes it in. An APIHOST is checked before use: at most :data:`MAX_APIHOST_LENGTH`
characters, an http(s) URL or a host, a valid host name and port, no user or password in it
(the AUTH key is the credential). The properties file is read only if it is a regular file
(:mod:`serverless_hpc.safeio`: a FIFO there cannot hang the driver).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from serverless_hpc import safeio
from serverless_hpc.redact import register, register_url

DEFAULT_PROPS_FILE: Final = "~/.wskprops"
DEFAULT_NAMESPACE: Final = "_"
DEFAULT_API_VERSION: Final = "v1"
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
#: Longest APIHOST accepted (a host name is at most 253 characters; this leaves a path).
MAX_APIHOST_LENGTH: Final = 1024
#: Largest properties file read (a real one is a few hundred bytes).
MAX_PROPS_BYTES: Final = 64 * 1024
_LABEL_RE: Final = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class CredentialsError(Exception):
    """Credentials are missing or malformed; the message says where to fix them."""


def _mask(secret: str) -> str:
    return "***" if secret else "<unset>"


@dataclass(frozen=True, slots=True)
class Credentials:
    """Where the controller is and how to authenticate to it.

    ``auth`` is excluded from ``repr``/``str`` and from equality output, so a logged or
    raised object cannot leak it; use :meth:`basic_auth` to get the pair for a request.
    """

    apihost: str
    auth: str = field(repr=False)
    namespace: str = DEFAULT_NAMESPACE
    api_version: str = DEFAULT_API_VERSION
    insecure: bool = False
    source: str = ""

    def __repr__(self) -> str:
        return (
            f"Credentials(apihost={self.apihost!r}, auth={_mask(self.auth)}, "
            f"namespace={self.namespace!r}, insecure={self.insecure}, source={self.source!r})"
        )

    __str__ = __repr__

    @property
    def base_url(self) -> str:
        """``https://host[:port]/api/v1``: the root every REST path hangs off."""
        return f"{normalize_apihost(self.apihost)}/api/{self.api_version}"

    def basic_auth(self) -> tuple[str, str]:
        """The (user, password) pair of the AUTH key, for HTTP basic authentication."""
        user, _, password = self.auth.partition(":")
        return user, password


def normalize_apihost(apihost: str) -> str:
    """``host`` -> ``https://host``; keep an explicit http(s) scheme; strip a trailing slash.

    :class:`CredentialsError` for anything that is not a usable controller address (see the
    module docstring); the message never repeats a password the value holds.
    """
    register_url(apihost if "://" in apihost else f"https://{apihost}")
    if len(apihost) > MAX_APIHOST_LENGTH:
        raise CredentialsError(
            f"APIHOST is {len(apihost)} characters long, more than {MAX_APIHOST_LENGTH}"
        )
    host = apihost.strip().rstrip("/")
    if not host:
        raise CredentialsError("APIHOST is empty")
    if not host.isascii() or not host.isprintable() or any(c.isspace() for c in host):
        raise CredentialsError("APIHOST must be printable ASCII without spaces")
    if "://" not in host:
        host = f"https://{host}"
    try:
        parts = urlsplit(host)
        port = parts.port
    except ValueError as exc:
        raise CredentialsError(f"APIHOST is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.netloc or not parts.hostname:
        raise CredentialsError(f"APIHOST {_shown(apihost)!r} is not a host or an http(s) URL")
    if "@" in parts.netloc:
        raise CredentialsError(
            "APIHOST must not hold a user or password (the AUTH key is the credential)"
        )
    if parts.query or parts.fragment:
        raise CredentialsError("APIHOST must not hold a query or fragment")
    if port == 0:
        raise CredentialsError("APIHOST's port must be 1-65535")
    _check_hostname(parts.hostname)
    return host


def _shown(apihost: str) -> str:
    """``apihost`` for a message: its first 80 characters."""
    return apihost if len(apihost) <= 80 else apihost[:77] + "..."


def _check_hostname(name: str) -> None:
    """A DNS name of valid labels, or an IP address; :class:`CredentialsError` otherwise."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return
    labels = name.rstrip(".").split(".")
    if len(name) > 253 or not all(_LABEL_RE.match(label) for label in labels):
        raise CredentialsError(f"APIHOST's host {_shown(name)!r} is not a valid host name")


def read_props(path: Path) -> dict[str, str]:
    """Parse a ``.wskprops`` file. A line that is not ``KEY=VALUE`` is an error naming its
    line number only (its content may be the AUTH key)."""
    props: dict[str, str] = {}
    try:
        text = safeio.read_text(path, max_bytes=MAX_PROPS_BYTES)
    except UnicodeDecodeError:
        raise CredentialsError(f"{path}: not a text file") from None
    except OSError as exc:  # not a regular file, too large, unreadable
        raise CredentialsError(f"cannot read {exc.filename or path}: {exc.strerror}") from None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key or not key.replace("_", "").isalnum():
            raise CredentialsError(f"{path}:{number}: expected KEY=VALUE")
        props[key.upper()] = value.strip()
        if key.upper() == "AUTH":
            register(value.strip())
    return props


def props_path(env: Mapping[str, str]) -> Path:
    """``$WSK_CONFIG_FILE`` if set, else ``~/.wskprops`` (``wsk``'s rule)."""
    configured = env.get("WSK_CONFIG_FILE")
    if configured:
        return Path(configured).expanduser()
    home = env.get("HOME")
    if home:
        return Path(home) / ".wskprops"
    return Path(DEFAULT_PROPS_FILE).expanduser()


#: Environment variables, lowest precedence first, and the setting each gives.
_ENV_KEYS: Final = (
    ("__OW_API_HOST", "APIHOST"),
    ("__OW_API_KEY", "AUTH"),
    ("__OW_NAMESPACE", "NAMESPACE"),
    ("WHISK_APIHOST", "APIHOST"),
    ("WHISK_AUTH", "AUTH"),
    ("WHISK_NAMESPACE", "NAMESPACE"),
    ("WHISK_APIVERSION", "APIVERSION"),
)


def _file_values(path: Path, *, explicit: bool) -> dict[str, str]:
    """The settings of properties file ``path`` (an empty NAMESPACE dropped); none when it
    is absent, unless it was named explicitly (then :class:`CredentialsError`)."""
    try:
        present = safeio.check_regular(path)
    except OSError as exc:
        raise CredentialsError(f"properties file {path}: {exc.strerror}") from None
    if not present:
        if explicit:
            raise CredentialsError(f"properties file {path} does not exist")
        return {}
    return {k: v for k, v in read_props(path).items() if v or k != "NAMESPACE"}


def load_credentials(
    env: Mapping[str, str] | None = None,
    *,
    config_file: Path | None = None,
    apihost: str | None = None,
    auth: str | None = None,
    namespace: str | None = None,
    insecure: bool | None = None,
) -> Credentials:
    """Resolve credentials from the sources in the module docstring, highest last.

    ``env`` defaults to ``os.environ``; tests pass their own. ``insecure`` falls back to
    ``$SHPC_OW_INSECURE``. Raises :class:`CredentialsError` when APIHOST or AUTH is missing
    or malformed, saying which source to fix.
    """
    env = os.environ if env is None else env
    path = config_file or props_path(env)
    explicit_file = config_file is not None or bool(env.get("WSK_CONFIG_FILE"))
    values = {"NAMESPACE": DEFAULT_NAMESPACE, "APIVERSION": DEFAULT_API_VERSION}
    #: Per setting, the source it was last taken from (named when it is malformed).
    origin: dict[str, str] = {}
    layers: list[tuple[str, Mapping[str, str | None]]] = [
        (str(path), _file_values(path, explicit=explicit_file))
    ]
    layers += [(name, {key: env.get(name)}) for name, key in _ENV_KEYS]
    layers += [
        (f"--{key.lower()}", {key: value})
        for key, value in (("APIHOST", apihost), ("AUTH", auth), ("NAMESPACE", namespace))
    ]
    for source, layer in layers:
        for key, value in layer.items():
            if value:
                values[key] = value
                origin[key] = source
                if key == "AUTH":
                    register(value)
    sources = list(dict.fromkeys(s for s, layer in layers if any(layer.values())))
    where = f"{path} (or WHISK_APIHOST / WHISK_AUTH)"
    if not values.get("APIHOST"):
        raise CredentialsError(f"no OpenWhisk APIHOST configured: set it in {where}")
    if not values.get("AUTH"):
        raise CredentialsError(f"no OpenWhisk AUTH key configured: set it in {where}")
    user, sep, password = values["AUTH"].partition(":")
    if not sep or not user or not password:
        raise CredentialsError("the OpenWhisk AUTH key must have the form <uuid>:<key>")
    try:
        normalize_apihost(values["APIHOST"])  # fail now on a malformed host
    except CredentialsError as exc:
        raise CredentialsError(f"{origin.get('APIHOST', 'APIHOST')}: {exc}") from None
    if insecure is None:
        insecure = env.get("SHPC_OW_INSECURE", "").strip().lower() in _TRUE
    return Credentials(
        apihost=values["APIHOST"],
        auth=values["AUTH"],
        namespace=values["NAMESPACE"] or DEFAULT_NAMESPACE,
        api_version=values["APIVERSION"] or DEFAULT_API_VERSION,
        insecure=insecure,
        source=", ".join(sources),
    )
