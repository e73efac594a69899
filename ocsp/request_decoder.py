"""`RequestDecoder`: request bytes to a checked `OCSPRequest`, remembering what it decoded.

Holds the decode cache (requests without a nonce, by their bytes), the nonce templates
(requests that come back with only a new nonce) and the request-signature check that
`require_signed_requests` asks for. No I/O: everything here is a function of the bytes, the
limits and the CA certificates served.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from .errors import BadRequestSignature, SigRequired
from .request import Nonce, OCSPRequest, RequestLimits, decode_request

DECODE_CACHE_MAX = 20_000
TEMPLATES_MAX = 256

_SIGNATURE_HASHES = {
    "1.2.840.113549.1.1.11": hashes.SHA256(),
    "1.2.840.113549.1.1.12": hashes.SHA384(),
    "1.2.840.113549.1.1.13": hashes.SHA512(),
    "1.2.840.10045.4.3.2": hashes.SHA256(),
    "1.2.840.10045.4.3.3": hashes.SHA384(),
    "1.2.840.10045.4.3.4": hashes.SHA512(),
}


@dataclass(frozen=True)
class NonceTemplate:
    """A decoded request with a nonce, and the bytes around the nonce's octets.

    A client sends the same request again with only a new nonce: same length, same bytes
    everywhere else. Such a request decodes to the same thing with the new nonce, since the
    octets of an OCTET STRING can be anything and every length octet lies outside them.
    """

    prefix: bytes
    suffix: bytes
    header: bytes  # extnValue octets before the nonce octets (the inner OCTET STRING's tag and length)
    request: OCSPRequest

    @classmethod
    def of(cls, data: bytes, req: OCSPRequest) -> NonceTemplate | None:
        nonce = req.nonce
        ev = nonce.extn_value
        at = data.find(ev)
        if at < 0 or data.rfind(ev) != at:
            return None  # not found exactly once: do not guess
        start = at + len(ev) - len(nonce.value)
        return cls(data[:start], data[start + len(nonce.value):], ev[: len(ev) - len(nonce.value)], req)

    def match(self, data: bytes) -> OCSPRequest | None:
        if not (data.startswith(self.prefix) and data.endswith(self.suffix)):
            return None
        value = data[len(self.prefix): len(data) - len(self.suffix)]
        tbs = data[len(data) - len(self.request.tbs_der):]
        return dataclasses.replace(self.request, nonce=Nonce(value, self.header + value), tbs_der=tbs)


class RequestDecoder:
    """Decodes requests within `limits`; with `require_signed`, also checks that each is
    signed by a certificate one of `ca_certificates` (DER) issued."""

    def __init__(self, limits: RequestLimits, *, require_signed: bool, ca_certificates: Sequence[bytes]) -> None:
        self.limits = limits
        self.require_signed = require_signed
        self.ca_certificates = tuple(ca_certificates)
        self.decoded: dict[bytes, OCSPRequest] = {}
        #: Nonce templates by request length.
        self.templates: dict[int, list[NonceTemplate]] = {}
        self._template_count = 0

    def read(self, data: bytes) -> OCSPRequest:
        """The request in `data`; raises the OCSP error that answers it when it is malformed
        or, with `require_signed`, not signed as required."""
        req = self.decode(data)
        if self.require_signed:
            self.check_signature(req)
        return req

    def decode(self, data: bytes) -> OCSPRequest:
        # Decoding is a pure function of the bytes, so caching it needs no invalidation.
        # Requests without a nonce repeat byte for byte; those with one, all but the nonce.
        req = self.decoded.get(data)
        if req is not None:
            return req
        for template in self.templates.get(len(data), ()):
            req = template.match(data)
            if req is not None:
                return req
        req = decode_request(data, self.limits)
        if req.signed:
            return req
        if req.nonce is None:
            if len(self.decoded) >= DECODE_CACHE_MAX:
                self.decoded.pop(next(iter(self.decoded)))
            self.decoded[data] = req
        elif self._template_count < TEMPLATES_MAX:
            template = NonceTemplate.of(data, req)
            if template is not None:
                self.templates.setdefault(len(data), []).append(template)
                self._template_count += 1
        return req

    def check_signature(self, req: OCSPRequest) -> None:
        sig = req.signature
        if sig is None:
            raise SigRequired("this responder requires signed requests")
        if not sig.certificates:
            raise BadRequestSignature("a signed request without the signer's certificate")
        try:
            cert = x509.load_der_x509_certificate(sig.certificates[0])
            key = cert.public_key()
            hash_alg = _SIGNATURE_HASHES[sig.algorithm_oid]
            if isinstance(key, rsa.RSAPublicKey):
                key.verify(sig.signature, req.tbs_der, padding.PKCS1v15(), hash_alg)
            elif isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(sig.signature, req.tbs_der, ec.ECDSA(hash_alg))
            else:
                raise BadRequestSignature("unsupported request signature key type")
        except (InvalidSignature, ValueError, KeyError, TypeError) as e:
            raise BadRequestSignature(f"request signature does not verify: {e!r}") from e
        # The requestor must hold a certificate from one of the CAs we serve.
        for ca_der in self.ca_certificates:
            try:
                cert.verify_directly_issued_by(x509.load_der_x509_certificate(ca_der))
                return
            except (InvalidSignature, ValueError, TypeError):
                continue
        raise BadRequestSignature("the request signer's certificate is not issued by a CA we serve")
