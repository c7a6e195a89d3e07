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
mask it; error messages name the file and line, never the line's content.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

DEFAULT_PROPS_FILE: Final = "~/.wskprops"
DEFAULT_NAMESPACE: Final = "_"
DEFAULT_API_VERSION: Final = "v1"
_TRUE: Final = frozenset({"1", "true", "yes", "on"})


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
    """``host`` -> ``https://host``; keep an explicit http(s) scheme; strip a trailing slash."""
    host = apihost.strip().rstrip("/")
    if not host:
        raise CredentialsError("APIHOST is empty")
    if "://" not in host:
        host = f"https://{host}"
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CredentialsError(f"APIHOST {apihost!r} is not a host or an http(s) URL")
    return host


def read_props(path: Path) -> dict[str, str]:
    """Parse a ``.wskprops`` file. A line that is not ``KEY=VALUE`` is an error naming its
    line number only (its content may be the AUTH key)."""
    props: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CredentialsError(f"{path}: not a text file") from None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key or not key.replace("_", "").isalnum():
            raise CredentialsError(f"{path}:{number}: expected KEY=VALUE")
        props[key.upper()] = value.strip()
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
    values = {"NAMESPACE": DEFAULT_NAMESPACE, "APIVERSION": DEFAULT_API_VERSION}
    sources: list[str] = []
    explicit_file = config_file is not None or bool(env.get("WSK_CONFIG_FILE"))
    if path.is_file():
        values.update({k: v for k, v in read_props(path).items() if v or k != "NAMESPACE"})
        sources.append(str(path))
    elif explicit_file:
        raise CredentialsError(f"properties file {path} does not exist")
    for prefix, mapping in (
        ("__OW_", {"API_HOST": "APIHOST", "API_KEY": "AUTH", "NAMESPACE": "NAMESPACE"}),
        (
            "WHISK_",
            {
                "APIHOST": "APIHOST",
                "AUTH": "AUTH",
                "NAMESPACE": "NAMESPACE",
                "APIVERSION": "APIVERSION",
            },
        ),
    ):
        for suffix, key in mapping.items():
            value = env.get(prefix + suffix)
            if value:
                values[key] = value
                sources.append(prefix + suffix)
    for key, value in (("APIHOST", apihost), ("AUTH", auth), ("NAMESPACE", namespace)):
        if value:
            values[key] = value
            sources.append(f"--{key.lower()}")
    where = f"{path} (or WHISK_APIHOST / WHISK_AUTH)"
    if not values.get("APIHOST"):
        raise CredentialsError(f"no OpenWhisk APIHOST configured: set it in {where}")
    if not values.get("AUTH"):
        raise CredentialsError(f"no OpenWhisk AUTH key configured: set it in {where}")
    user, sep, password = values["AUTH"].partition(":")
    if not sep or not user or not password:
        raise CredentialsError("the OpenWhisk AUTH key must have the form <uuid>:<key>")
    normalize_apihost(values["APIHOST"])  # fail now on a malformed host
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
