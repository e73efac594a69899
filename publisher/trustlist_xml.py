"""The trust list as XML, shaped after ETSI TS 119 612's TrustServiceStatusList, and back.

Pure: `build_xml` turns a `TrustList` into the unsigned document, `parse_xml` reads a
published one (signed or not) back into a `TrustList`, after checking it against the schema
shipped beside this module (`schemas/trustlist.xsd`). No I/O beyond reading that schema.
"""
from __future__ import annotations

import base64
import datetime as dt
import functools
from pathlib import Path

from lxml import etree

from .errors import MalformedInput
from .trustlist import LANGUAGES, CertType, Entry, Status, StatusPeriod, TrustList

NS = "urn:pkirepo:trustlist:1"
XML_NS = "http://www.w3.org/XML/1998/namespace"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
TSL_TAG = "urn:pkirepo:trustlist:gd-hk-mutual-recognition"
TSL_TYPE = "urn:pkirepo:trustlist:type:gd-hk-mutual-recognition"
STATUS_URI = "urn:pkirepo:trustlist:status:"
SVCTYPE_URI = "urn:pkirepo:trustlist:svctype:"
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "trustlist.xsd"
MAX_BYTES = 16 * 1024 * 1024

SCHEME_NAME = (
    ("zh-Hant", "粵港兩地電子簽名證書互認：符合互認條件的證書類別信任列表"),
    ("en", "Guangdong–Hong Kong mutual recognition of electronic signature certificates: "
           "trust list of qualifying certificate types"),
)


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _time(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, _q(tag))
    if text is not None:
        el.text = text
    return el


def _names(parent: etree._Element, tag: str, names: tuple[tuple[str, str], ...]) -> None:
    holder = _sub(parent, tag)
    for lang, value in names:
        _sub(holder, "Name", value).set(f"{{{XML_NS}}}lang", lang)


def _status(parent: etree._Element, period: StatusPeriod) -> None:
    _sub(parent, "ServiceStatus", STATUS_URI + period.status.value)
    _sub(parent, "StatusStartingTime", _time(period.start))


def _subject(der: bytes) -> str:
    from cryptography import x509

    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


def build_xml(tl: TrustList) -> bytes:
    """The unsigned list: UTF-8 with an XML declaration, entries grouped by issuing CA in
    the order they were first listed."""
    root = etree.Element(_q("TrustServiceStatusList"), nsmap={None: NS})
    root.set("TSLTag", TSL_TAG)
    info = _sub(root, "SchemeInformation")
    _sub(info, "TSLVersionIdentifier", "1")
    _sub(info, "TSLSequenceNumber", str(tl.seq))
    _sub(info, "TSLType", TSL_TYPE)
    _names(info, "SchemeOperatorName", tl.operator)
    _names(info, "SchemeName", SCHEME_NAME)
    _sub(info, "ListIssueDateTime", _time(tl.issued))
    _sub(_sub(info, "NextUpdate"), "dateTime", _time(tl.next_update))
    _sub(_sub(info, "DistributionPoints"), "URI", tl.distribution_url)
    if tl.entries:
        providers = _sub(root, "TrustServiceProviderList")
        by_ca: dict[str, list[Entry]] = {}
        for e in tl.entries:
            by_ca.setdefault(e.ca_name, []).append(e)
        for ca_name, entries in by_ca.items():
            tsp = _sub(providers, "TrustServiceProvider")
            tsp_info = _sub(tsp, "TSPInformation")
            _sub(tsp_info, "TSPName", ca_name)
            _sub(tsp_info, "TSPSubjectName", _subject(entries[0].ca_cert_der))
            services = _sub(tsp, "TSPServices")
            for e in entries:
                _service(_sub(services, "TSPService"), e)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _service(svc: etree._Element, e: Entry) -> None:
    si = _sub(svc, "ServiceInformation")
    _sub(si, "ServiceTypeIdentifier", SVCTYPE_URI + e.cert_type.value)
    _names(si, "ServiceName", e.names)
    ident = _sub(si, "ServiceDigitalIdentity")
    _sub(_sub(ident, "DigitalId"), "X509Certificate", base64.b64encode(e.ca_cert_der).decode())
    _sub(_sub(ident, "DigitalId"), "X509CertificateSHA256", e.fingerprint)
    _status(si, e.status)
    _sub(_sub(si, "TSPServiceDefinitionURI"), "URI", e.cps_url)
    ext = _sub(si, "ServiceInformationExtensions")
    _sub(ext, "EntryIdentifier", str(e.id))
    _sub(ext, "CertificateType", e.cert_type.value)
    oids = _sub(ext, "PolicyIdentifiers")
    for oid in e.policy_oids:
        _sub(oids, "Identifier", oid)
    if len(e.history) > 1:
        history = _sub(svc, "ServiceHistory")
        for period in reversed(e.history[:-1]):
            _status(_sub(history, "ServiceHistoryInstance"), period)


@functools.cache
def schema() -> etree.XMLSchema:
    """The shipped schema, read once."""
    return etree.XMLSchema(etree.parse(str(SCHEMA_PATH), _parser()))


def _parser() -> etree.XMLParser:
    # No DTDs, entities or network: a list is data, never instructions to fetch or expand.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                           remove_blank_text=False)


def load(data: bytes) -> etree._Element:
    """Parse and check against the schema; MalformedInput naming the first problem."""
    if len(data) > MAX_BYTES:
        raise MalformedInput(f"trust list larger than {MAX_BYTES} bytes")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as e:
        raise MalformedInput(f"not well-formed XML: {e}") from None
    if root.getroottree().docinfo.doctype:
        raise MalformedInput("a trust list has no DOCTYPE")
    s = schema()
    if not s.validate(root):
        err = s.error_log.last_error
        raise MalformedInput(f"does not match the trust list schema: line {err.line}: {err.message}")
    return root


def _text(el: etree._Element, *path: str) -> str:
    for tag in path:
        el = el.find(_q(tag))
    return el.text or ""


def _read_names(el: etree._Element) -> tuple[tuple[str, str], ...]:
    names = tuple((n.get(f"{{{XML_NS}}}lang"), n.text or "") for n in el.findall(_q("Name")))
    if tuple(lang for lang, _ in names) != LANGUAGES:
        raise MalformedInput(f"names must be given in {', '.join(LANGUAGES)}, in that order")
    return names


def _read_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


def _read_status(el: etree._Element) -> StatusPeriod:
    return StatusPeriod(Status(_text(el, "ServiceStatus").removeprefix(STATUS_URI)),
                        _read_time(_text(el, "StatusStartingTime")))


def parse_xml(data: bytes) -> TrustList:
    """The list a published document holds; MalformedInput if it is not one of ours."""
    root = load(data)
    try:
        info = root.find(_q("SchemeInformation"))
        entries = []
        for tsp in root.iterfind(f"{_q('TrustServiceProviderList')}/{_q('TrustServiceProvider')}"):
            ca_name = _text(tsp, "TSPInformation", "TSPName")
            for svc in tsp.iterfind(f"{_q('TSPServices')}/{_q('TSPService')}"):
                si = svc.find(_q("ServiceInformation"))
                ext = si.find(_q("ServiceInformationExtensions"))
                history = [_read_status(h) for h in svc.iterfind(f"{_q('ServiceHistory')}/{_q('ServiceHistoryInstance')}")]
                history.reverse()
                history.append(_read_status(si))
                entries.append(Entry(
                    id=int(_text(ext, "EntryIdentifier")),
                    ca_name=ca_name,
                    ca_cert_der=base64.b64decode(_text(si, "ServiceDigitalIdentity", "DigitalId", "X509Certificate")),
                    cert_type=CertType(_text(ext, "CertificateType")),
                    policy_oids=tuple(i.text for i in ext.find(_q("PolicyIdentifiers"))),
                    cps_url=_text(si, "TSPServiceDefinitionURI", "URI"),
                    names=_read_names(si.find(_q("ServiceName"))),
                    history=tuple(history),
                ))
                stated = si.find(f"{_q('ServiceDigitalIdentity')}//{_q('X509CertificateSHA256')}").text
                if stated != entries[-1].fingerprint:
                    raise MalformedInput(f"{entries[-1].label}: the SHA-256 fingerprint does not match the certificate")
        entries.sort(key=lambda e: e.id)
        return TrustList(
            seq=int(_text(info, "TSLSequenceNumber")),
            issued=_read_time(_text(info, "ListIssueDateTime")),
            next_update=_read_time(_text(info, "NextUpdate", "dateTime")),
            operator=_read_names(info.find(_q("SchemeOperatorName"))),
            distribution_url=_text(info, "DistributionPoints", "URI"),
            entries=tuple(entries),
        )
    except (ValueError, TypeError) as e:
        raise MalformedInput(f"not a readable trust list: {e}") from None
