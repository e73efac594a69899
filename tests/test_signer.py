"""publisher.signer: PEM keys, passphrases, permissions."""
from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from publisher.errors import ConfigError
from publisher.signer import ECDSA_WITH_SHA384, SHA256_WITH_RSA, KeySigner, load_key_signer

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_key(path, key, password: bytes | None = None, mode=0o600):
    enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc))
    os.chmod(path, mode)
    return path


def test_clear_key(tmp_path):
    s = load_key_signer(write_key(tmp_path / "k.pem", RSA_KEY))
    assert s.algorithm_der == SHA256_WITH_RSA
    RSA_KEY.public_key().verify(s.sign(b"data"), b"data", padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_key_readable_by_others_refused(tmp_path, mode):
    path = write_key(tmp_path / "k.pem", RSA_KEY, mode=mode)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_key_signer(path, what="ca[0].key")


def test_passphrase_from_file_and_env(tmp_path, monkeypatch):
    path = write_key(tmp_path / "k.pem", RSA_KEY, password=b"s3cret")
    (tmp_path / "pass").write_text("s3cret\n")
    assert load_key_signer(path, passphrase_file=tmp_path / "pass").public_key().public_numbers() == \
        RSA_KEY.public_key().public_numbers()
    monkeypatch.setenv("PKIREPO_TEST_PASS", "s3cret")
    load_key_signer(path, passphrase_env="PKIREPO_TEST_PASS")
    monkeypatch.setenv("PKIREPO_TEST_PASS", "wrong")
    with pytest.raises(ConfigError, match="wrong passphrase"):
        load_key_signer(path, passphrase_env="PKIREPO_TEST_PASS")
    with pytest.raises(ConfigError, match="PKIREPO_UNSET_VAR"):
        load_key_signer(path, passphrase_env="PKIREPO_UNSET_VAR")
    with pytest.raises(ConfigError):
        load_key_signer(path)  # encrypted, no passphrase


def test_not_a_key_and_missing_file(tmp_path):
    p = tmp_path / "k.pem"
    p.write_text("hello")
    os.chmod(p, 0o600)
    with pytest.raises(ConfigError, match="not a PEM private key"):
        load_key_signer(p)
    with pytest.raises(ConfigError, match="cannot read key file"):
        load_key_signer(tmp_path / "none.pem")


def test_weak_and_odd_keys_refused():
    with pytest.raises(ConfigError, match="at least 2048"):
        KeySigner(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with pytest.raises(ConfigError, match="P-256 or P-384"):
        KeySigner(ec.generate_private_key(ec.SECP521R1()))
    assert KeySigner(ec.generate_private_key(ec.SECP384R1())).algorithm_der == ECDSA_WITH_SHA384
