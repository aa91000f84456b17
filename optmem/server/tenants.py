"""Who is calling: the key file (TOML ``[keys]``, key -> tenant) and bearer-key authentication.

Keys are compared in constant time against every key (no early exit, so the time taken says
nothing about which key came close) and never appear in errors or logs.
"""

from __future__ import annotations

import hmac
import re
import tomllib
from pathlib import Path

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # tenants and conversation names: no "/", no spaces
MIN_KEY_CHARS = 16


class KeyFileError(ValueError):
    """A key file that cannot be used; the message names the file and the entry, never a key."""


def valid_name(name: str) -> bool:
    return NAME.fullmatch(name) is not None


def load_keys(path: str | Path) -> dict[bytes, str]:
    """Key (as bytes) -> tenant, from a TOML file with a ``[keys]`` table."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KeyFileError(f"key file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise KeyFileError(f"{path}: not valid TOML: {e}") from None
    keys = data.get("keys")
    if not isinstance(keys, dict) or not keys:
        raise KeyFileError(f"{path}: needs a non-empty [keys] table mapping each key to a tenant")
    out: dict[bytes, str] = {}
    for i, (key, tenant) in enumerate(keys.items(), 1):
        if len(key) < MIN_KEY_CHARS or not key.isascii() or not key.isprintable():
            raise KeyFileError(f"{path}: key #{i} (tenant {tenant!r}) must be at least {MIN_KEY_CHARS} printable "
                               "ASCII characters")
        if not isinstance(tenant, str) or not valid_name(tenant):
            raise KeyFileError(f"{path}: key #{i} maps to {tenant!r}; a tenant is 1-128 letters, digits, '.', '_' "
                               "or '-', starting with a letter or digit")
        out[key.encode("ascii")] = tenant
    return out


class Tenants:
    def __init__(self, keys: dict[bytes, str]):
        if not keys:
            raise KeyFileError("no keys: every request would be refused")
        self._keys = list(keys.items())

    def authenticate(self, authorization: str | None) -> str | None:
        """The tenant of ``Authorization: Bearer KEY``, or None (missing, malformed or unknown)."""
        if not authorization:
            return None
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return None
        given = presented.strip().encode("utf-8", "replace")
        tenant = None
        for key, owner in self._keys:
            if hmac.compare_digest(key, given):  # every key is compared, match or not
                tenant = owner
        return tenant
