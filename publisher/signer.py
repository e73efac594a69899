"""Signers own their keys; builders only ever see `algorithm_der` and `sign()`.

The interface is deliberately small so that a PKCS#11 HSM signer can take the place of
the PEM-file signer later without touching the CRL or OCSP builders.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from . import der
from .errors import ConfigError

# AlgorithmIdentifier DER. RSA PKCS#1 v1.5 carries an explicit NULL parameter; ECDSA none.
SHA256_WITH_RSA = der.sequence(der.oid("1.2.840.113549.1.1.11"), der.tlv(der.NULL, b""))
SHA384_WITH_RSA = der.sequence(der.oid("1.2.840.113549.1.1.12"), der.tlv(der.NULL, b""))
ECDSA_WITH_SHA256 = der.sequence(der.oid("1.2.840.10045.4.3.2"))
ECDSA_WITH_SHA384 = der.sequence(der.oid("1.2.840.10045.4.3.3"))


class Signer(Protocol):
    """Something that signs with one key."""

    #: The signatureAlgorithm AlgorithmIdentifier, DER-encoded.
    algorithm_der: bytes

    def public_key(self): ...

    def sign(self, data: bytes) -> bytes:
        """Return the signature value (the BIT STRING's content) over data."""


class KeySigner:
    """Signs with an in-memory RSA or ECDSA private key."""

    def __init__(self, key) -> None:
        self._key = key
        if isinstance(key, rsa.RSAPrivateKey):
            if key.key_size < 2048:
                raise ConfigError(f"RSA key of {key.key_size} bits: at least 2048 are required")
            self.algorithm_der = SHA256_WITH_RSA
            self._hash = hashes.SHA256()
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            if isinstance(key.curve, ec.SECP256R1):
                self.algorithm_der, self._hash = ECDSA_WITH_SHA256, hashes.SHA256()
            elif isinstance(key.curve, ec.SECP384R1):
                self.algorithm_der, self._hash = ECDSA_WITH_SHA384, hashes.SHA384()
            else:
                raise ConfigError(f"unsupported EC curve {key.curve.name}: use P-256 or P-384")
        else:
            raise ConfigError(f"unsupported key type {type(key).__name__}: use RSA or ECDSA")

    @property
    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return self._hash

    @property
    def private_key(self):
        """The key itself, for libraries that sign whole formats with it (XML signatures)."""
        return self._key

    def public_key(self):
        return self._key.public_key()

    def sign(self, data: bytes) -> bytes:
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(data, padding.PKCS1v15(), self._hash)
        return self._key.sign(data, ec.ECDSA(self._hash))


def load_key_signer(
    path: Path,
    *,
    passphrase_file: Path | None = None,
    passphrase_env: str | None = None,
    what: str = "key",
) -> KeySigner:
    """Load a PEM private key, refusing one that other users can read.

    `what` names the config key in error messages.
    """
    try:
        st = path.stat()
    except OSError as e:
        raise ConfigError(f"{what}: cannot read key file {path}: {e.strerror}") from e
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{what}: key file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):o}); run: chmod 600 {path}"
        )
    password: bytes | None = None
    if passphrase_file is not None:
        try:
            password = passphrase_file.read_bytes().rstrip(b"\r\n")
        except OSError as e:
            raise ConfigError(f"{what}: cannot read passphrase file {passphrase_file}: {e.strerror}") from e
    elif passphrase_env:
        value = os.environ.get(passphrase_env)
        if value is None:
            raise ConfigError(f"{what}: environment variable {passphrase_env} (the key passphrase) is not set")
        password = value.encode()
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=password)
    except TypeError as e:  # encrypted without password, or password for a clear key
        raise ConfigError(f"{what}: {path}: {e}") from e
    except ValueError as e:
        raise ConfigError(f"{what}: {path}: not a PEM private key, or wrong passphrase") from e
    return KeySigner(key)
