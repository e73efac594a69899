"""Helpers shared by the OCSP unit tests: responders, real-client requests, hand-made DER."""
from __future__ import annotations

import subprocess
from pathlib import Path

import ocsp_pki
from publisher import der
from publisher.signer import KeySigner

from ocsp.response import ResponderIdentity

VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"


def ca_dir(pki_dir: Path, ca: ocsp_pki.CA) -> Path:
    return pki_dir / ("rsa" if "RSA" in ca.name else "ec")


def responder_for(ca: ocsp_pki.CA, *, use_ca_key: bool = False) -> ResponderIdentity:
    if use_ca_key:
        return ResponderIdentity.from_certificate(KeySigner(ca.key), ca.cert_der, include_certificate=False)
    return ResponderIdentity.from_certificate(KeySigner(ca.responder_key), ca.responder_der)


def openssl_request(directory: Path, out: Path, *serials: int, digest: str = "", nonce: bool = True) -> bytes:
    """Have `openssl ocsp` write a request for the given serials of the CA in directory."""
    args = ["openssl", "ocsp", "-issuer", str(directory / "ca.pem")]
    if digest:
        args.append(f"-{digest}")
    for serial in serials:
        leaf = directory / f"leaf-{serial:x}.pem"
        args += ["-cert", str(leaf)] if leaf.exists() else ["-serial", hex(serial)]
    if not nonce:
        args.append("-no_nonce")
    args += ["-reqout", str(out)]
    subprocess.run(args, check=True, capture_output=True)
    return out.read_bytes()


# Hand-made requests, for inputs no well-behaved client would send.

SHA1_ALG = der.sequence(der.oid("1.3.14.3.2.26"), der.tlv(der.NULL, b""))


def cert_id(alg: bytes = SHA1_ALG, name_hash: bytes = b"\x11" * 20, key_hash: bytes = b"\x22" * 20, serial: int = 5) -> bytes:
    return der.sequence(alg, der.octet_string(name_hash), der.octet_string(key_hash), der.integer(serial))


def nonce_ext(value: bytes, *, wrapped: bool = True, critical: bool = False) -> bytes:
    return der.extension("1.3.6.1.5.5.7.48.1.2", der.octet_string(value) if wrapped else value, critical)


def make_request(
    cert_ids: list[bytes] | None = None,
    extensions: list[bytes] | None = None,
    *,
    version: int | None = None,
    single_extensions: list[bytes] | None = None,
    signature: bytes | None = None,
) -> bytes:
    cert_ids = [cert_id()] if cert_ids is None else cert_ids
    singles = []
    for cid in cert_ids:
        parts = [cid]
        if single_extensions is not None:
            parts.append(der.explicit(0, der.sequence(*single_extensions)))
        singles.append(der.sequence(*parts))
    tbs = []
    if version is not None:
        tbs.append(der.explicit(0, der.integer(version)))
    tbs.append(der.sequence(*singles))
    if extensions is not None:
        tbs.append(der.explicit(2, der.sequence(*extensions)))
    outer = [der.sequence(*tbs)]
    if signature is not None:
        outer.append(der.explicit(0, signature))
    return der.sequence(*outer)
