"""Source secrets at rest: a Fernet token of a JSON object, keyed by `TIDEMILL_SECRET_KEY`.

The setting may hold several keys separated by commas: the first encrypts, every one decrypts,
so a key is rotated by putting the new key first, re-encrypting (`tidemill sources rekey`) and
then dropping the old one. Without the setting, a key is generated once into the data
directory (`secret.key`, mode 0600) for the embedded default. Only the last 4 characters of a
secret are ever shown.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from app.config import Settings
from app.errors import UserError

KEY_FILE = "secret.key"


class SecretKeyError(UserError):
    """The secrets cannot be read with the configured keys."""


def _generated_key(data_dir: Path) -> str:
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(Fernet.generate_key())
    return path.read_text().strip()


@dataclass(frozen=True)
class Vault:
    fernet: MultiFernet

    def seal(self, secrets: dict[str, str]) -> bytes:
        return self.fernet.encrypt(json.dumps(secrets, sort_keys=True).encode())

    def open(self, token: bytes) -> dict[str, str]:
        try:
            secrets: dict[str, str] = json.loads(self.fernet.decrypt(token))
        except InvalidToken:
            raise SecretKeyError(
                "source secrets cannot be decrypted with TIDEMILL_SECRET_KEY: set the key they "
                "were stored with (several keys may be given, comma-separated)"
            ) from None
        return secrets

    def rotate(self, token: bytes) -> bytes:
        """The same secrets encrypted with the first key."""
        return self.fernet.rotate(token)


def vault(settings: Settings) -> Vault:
    text = settings.secret_key or _generated_key(settings.data_dir)
    try:
        keys = [Fernet(key.strip().encode()) for key in text.split(",") if key.strip()]
    except ValueError:
        raise SecretKeyError(
            "TIDEMILL_SECRET_KEY must be one or more Fernet keys (32 url-safe base64-encoded "
            "bytes), comma-separated"
        ) from None
    if not keys:
        raise SecretKeyError("TIDEMILL_SECRET_KEY holds no key")
    return Vault(MultiFernet(keys))


def hint(secret: str) -> str:
    """What may be shown of a secret: its last 4 characters."""
    return secret[-4:] if len(secret) >= 12 else ""  # a short secret shows nothing
