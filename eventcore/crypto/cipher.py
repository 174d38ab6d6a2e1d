"""AES-256-GCM from the ``cryptography`` package (``pip install eventcore[crypto]``): the
only cipher EventCore uses, for payloads and for wrapping data keys under the master key.
Nothing here is home-made cryptography: a random 96-bit nonce per message, the tag checked
on every decryption, associated data binding each ciphertext to where it belongs."""

from __future__ import annotations

import os
from typing import Any, Final

from eventcore.errors import ConfigurationError

__all__ = [
    "KEY_BYTES",
    "NONCE_BYTES",
    "AuthenticationFailed",
    "decrypt",
    "encrypt",
    "forget",
    "new_key",
]

KEY_BYTES: Final = 32
"""AES-256: every data key and the master key are 32 bytes."""
NONCE_BYTES: Final = 12


class AuthenticationFailed(Exception):
    """The tag did not verify: wrong key, or the ciphertext or its associated data altered."""


_LIB: list[Any] = []  # [AESGCM, InvalidTag] once imported
_CIPHERS: dict[bytes, Any] = {}  # key -> its AESGCM object (building one costs a few us)
_MAX_CIPHERS: Final = 4096


def _aesgcm() -> Any:
    if not _LIB:
        try:
            from cryptography.exceptions import InvalidTag
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError:
            raise ConfigurationError(
                "encryption needs the cryptography package: pip install eventcore[crypto]"
            ) from None
        _LIB[:] = [AESGCM, InvalidTag]
    return _LIB[0]


def _cipher(key: bytes) -> Any:
    found = _CIPHERS.get(key)
    if found is None:
        if len(_CIPHERS) >= _MAX_CIPHERS:
            _CIPHERS.clear()
        found = _CIPHERS[key] = _aesgcm()(key)
    return found


def require() -> None:
    """Raise :class:`ConfigurationError` now unless the cipher can be used."""
    _aesgcm()


def check_key(key: object, what: str) -> bytes:
    """``key`` if it is 32 bytes, else :class:`ConfigurationError` (never showing it)."""
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_BYTES:
        size = f"{len(key)} bytes" if isinstance(key, (bytes, bytearray)) else type(key).__name__
        raise ConfigurationError(
            f"{what} must be {KEY_BYTES} random bytes (AES-256), got {size}; generate one "
            "with os.urandom(32) and keep it in your secret manager"
        )
    return bytes(key)


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def encrypt(key: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """``(nonce, ciphertext with tag)``."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce, _cipher(key).encrypt(nonce, plaintext, aad)


def decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    try:
        plaintext: bytes = _cipher(key).decrypt(nonce, ciphertext, aad)
    except (_LIB[1], ValueError):
        raise AuthenticationFailed from None
    return plaintext


def forget(key: bytes) -> None:
    """Drop the cached cipher object of a destroyed key."""
    _CIPHERS.pop(key, None)
