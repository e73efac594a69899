"""Enveloped XML signatures (XMLDSig), as trusted lists carry them: RSA or ECDSA with SHA-256,
exclusive canonicalisation, one reference to the whole document (URI=""), the signing
certificate in KeyInfo. Takes the key and the certificate; the caller loads them.

Pure CPU work, no I/O: a list is a few kilobytes and signs in milliseconds.
"""
from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from .errors import VerificationError

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"


class XmlSigner:
    """Signs documents with one key, naming one certificate."""

    def __init__(self, key, cert: x509.Certificate) -> None:
        if isinstance(key, rsa.RSAPrivateKey):
            self._algorithm = "rsa-sha256"
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            self._algorithm = "ecdsa-sha256"
        else:
            raise TypeError(f"unsupported key type {type(key).__name__}: use RSA or ECDSA")
        if key.public_key().public_numbers() != cert.public_key().public_numbers():
            raise ValueError("the key does not belong to the certificate")
        self._key = key
        self.certificate = cert

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(Encoding.PEM)

    def sign(self, xml: bytes) -> bytes:
        """`xml` with a ds:Signature appended to its root element."""
        from signxml import XMLSigner, methods

        root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
        signer = XMLSigner(method=methods.enveloped, signature_algorithm=self._algorithm,
                           digest_algorithm="sha256", c14n_algorithm=EXC_C14N)
        signed = signer.sign(root, key=self._key, cert=[self.certificate])
        return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def verify(xml: bytes, cert_pem: bytes) -> None:
    """Check that `xml` carries a valid enveloped signature over the whole document by the
    key of `cert_pem`; VerificationError otherwise."""
    from signxml import XMLVerifier
    from signxml.exceptions import SignXMLException

    try:
        root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
        # The signature covers the whole document (URI=""), processing instructions outside
        # the list included, but signxml digests the list element alone: a document with
        # anything beside it (a damaged XML declaration reads as one) is refused here, as
        # xmlsec1 refuses it.
        if root.getprevious() is not None or root.getnext() is not None:
            raise VerificationError("the document holds something outside the signed list (a processing "
                                    "instruction or comment)")
        result = XMLVerifier().verify(xml, x509_cert=cert_pem.decode(), expect_references=1)
    except (SignXMLException, etree.LxmlError, ValueError) as e:
        # A damaged document fails anywhere from parsing to canonicalisation; each means it does not verify.
        raise VerificationError(f"the XML signature does not verify: {e}") from None
    signed = result.signed_xml
    if signed is None or etree.QName(signed).localname != "TrustServiceStatusList":
        raise VerificationError("the XML signature does not cover the whole list")
