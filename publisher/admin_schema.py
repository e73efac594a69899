"""The admin API's contract: every route with its role, its body's fields and its answers,
read by two users: the request parser (each field checked, a refusal naming it) and the
OpenAPI 3.1 document served at /admin/v1/openapi.json. One definition for both, so the
document cannot say what the parser does not do. Pure: values in, values or `Invalid` out.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .config import NAME_RE
from .crl import EARLIEST_TIME, Reason

PREFIX = "/admin/v1"
MAX_SERIAL_OCTETS = 20  # RFC 5280 §4.1.2.2
MAX_KEY = 255  # characters of an Idempotency-Key
KEY_RE = re.compile(r"[\x21-\x7e]{1,%d}" % MAX_KEY)  # visible ASCII: what a header carries safely
_HEX = frozenset("0123456789abcdefABCDEF")
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")

#: The revocation reasons a revocation may give (hold and release have their own routes).
REVOKE_REASONS = tuple(r.name for r in Reason if r not in (Reason.certificateHold, Reason.removeFromCRL))


class Invalid(Exception):
    """A request field that is missing, of the wrong type or out of range: 400, naming it."""

    def __init__(self, field_name: str, detail: str) -> None:
        super().__init__(f"{field_name}: {detail}")
        self.field = field_name
        self.detail = f"{field_name}: {detail}"


# Parsers: each takes the JSON value and returns the parsed one, or raises ValueError with
# the reason (the caller adds the field's name).

def parse_serial(value: Any) -> int:
    """Hexadecimal, optionally with 0x or openssl's colons; positive, at most 20 octets.
    Signs, underscores and non-ASCII digits, which int() would take, are refused: a serial
    typed wrong must not name another certificate."""
    if not isinstance(value, str):
        raise ValueError("must be a string of hexadecimal digits")
    t = value.strip().replace(":", "")
    if t[:2].lower() == "0x":
        t = t[2:]
    if not t or not set(t) <= _HEX:
        raise ValueError(f"{value[:80]!r} is not a hexadecimal serial number")
    n = int(t, 16)
    if n.bit_length() > 8 * MAX_SERIAL_OCTETS:
        raise ValueError(f"longer than {MAX_SERIAL_OCTETS} octets")
    return n


def parse_time(value: Any) -> dt.datetime:
    """RFC 3339 / ISO 8601 with a zone (Z or an offset); from 1950 on, as a CRL can say."""
    if not isinstance(value, str) or not value.isascii() or len(value) > 40:
        raise ValueError("must be an RFC 3339 time, e.g. 2026-11-25T01:15:00Z")
    t = value.strip()
    try:
        when = dt.datetime.fromisoformat(t[:-1] + "+00:00" if t[-1:] in "Zz" and t else t)
    except ValueError:
        raise ValueError(f"{value!r} is not an RFC 3339 time (e.g. 2026-11-25T01:15:00Z)") from None
    if when.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone: add Z or an offset")
    try:
        when = when.astimezone(dt.timezone.utc)
    except OverflowError:
        raise ValueError(f"{value!r} is out of range") from None
    if when < EARLIEST_TIME:
        raise ValueError(f"{value!r} is before 1950, which a CRL cannot express")
    return when


def parse_date(value: Any) -> dt.date:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("must be a date, YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date") from None


def parse_reason(value: Any) -> Reason:
    if not isinstance(value, str) or value not in REVOKE_REASONS:
        raise ValueError(f"must be one of {', '.join(REVOKE_REASONS)}")
    return Reason[value]


def parse_name(value: Any) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise ValueError("must be a CA name of the config (letters, digits, . _ -)")
    return value


def parse_base64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("must be a string of standard base64")
    t = "".join(value.split())
    if not _B64.fullmatch(t) or len(t) % 4:
        raise ValueError("is not standard base64")
    try:
        data = base64.b64decode(t, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not standard base64") from None
    if not data:
        raise ValueError("is empty")
    return data


def text(max_len: int, *, one_line: bool = True) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("must be a string")
        t = value.strip()
        if not t or len(t) > max_len:
            raise ValueError(f"must be 1 to {max_len} characters")
        if one_line and not t.isprintable():
            raise ValueError("must be printable text on one line")
        if not one_line and any(not (c.isprintable() or c in "\n\t") for c in t):
            raise ValueError("must be printable text")
        return t
    return parse


def integer(lo: int, hi: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"must be an integer from {lo} to {hi}")
        return value
    return parse


def languages(langs: tuple[str, ...], max_len: int, *, one_line: bool) -> Callable[[Any], list[tuple[str, str]]]:
    inner = text(max_len, one_line=one_line)

    def parse(value: Any) -> list[tuple[str, str]]:
        if not isinstance(value, dict):
            raise ValueError(f"must be an object with a text for each of {', '.join(langs)}")
        extra = sorted(set(value) - set(langs))
        if extra:
            raise ValueError(f"unknown language {extra[0][:20]!r}: use {', '.join(langs)}")
        missing = [lang for lang in langs if lang not in value]
        if missing:
            raise ValueError(f"the text in {missing[0]} is missing")
        out = []
        for lang in langs:
            try:
                out.append((lang, inner(value[lang])))
            except ValueError as e:
                raise ValueError(f"{lang}: {e}") from None
        return out
    return parse


def string_list(item: Callable[[Any], str], max_items: int) -> Callable[[Any], list[str]]:
    def parse(value: Any) -> list[str]:
        if not isinstance(value, list) or not 1 <= len(value) <= max_items:
            raise ValueError(f"must be a list of 1 to {max_items} strings")
        out = []
        for i, v in enumerate(value):
            try:
                out.append(item(v))
            except ValueError as e:
                raise ValueError(f"[{i}]: {e}") from None
        return out
    return parse


@dataclass(frozen=True)
class Field:
    name: str
    schema: Mapping[str, Any]  # JSON Schema of the value, for the OpenAPI document
    parse: Callable[[Any], Any]
    required: bool = False


@dataclass(frozen=True)
class Body:
    fields: tuple[Field, ...]

    def schema(self) -> dict:
        return {"type": "object", "additionalProperties": False,
                "properties": {f.name: dict(f.schema) for f in self.fields},
                **({"required": [f.name for f in self.fields if f.required]}
                   if any(f.required for f in self.fields) else {})}

    def parse(self, data: Any) -> dict[str, Any]:
        """The parsed fields (absent optional ones as None); Invalid names the first field
        at fault. Unknown fields are refused: a misspelt optional field must not be ignored."""
        if not isinstance(data, dict):
            raise Invalid("body", "must be a JSON object")
        known = {f.name for f in self.fields}
        unknown = sorted(k for k in data if k not in known)
        if unknown:
            name = unknown[0][:60]
            raise Invalid(name if name.isprintable() and name.strip() == name and name else repr(name),
                          "is not a field of this request "
                                           f"(fields: {', '.join(f.name for f in self.fields)})")
        out: dict[str, Any] = {}
        for f in self.fields:
            if f.name not in data or data[f.name] is None:
                if f.required:
                    raise Invalid(f.name, "is required")
                out[f.name] = None
                continue
            try:
                out[f.name] = f.parse(data[f.name])
            except ValueError as e:
                raise Invalid(f.name, str(e)) from None
        return out


B64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$|^[A-Za-z0-9+/]{2}==$|^[A-Za-z0-9+/]{3}=$"
TIME_SCHEMA = {"type": "string", "format": "date-time", "description": "RFC 3339, from 1950 on"}
SERIAL_SCHEMA = {"type": "string", "pattern": r"^(0[xX])?[0-9A-Fa-f:]{1,80}$",
                 "description": "hexadecimal, at most 20 octets (0x and openssl's colons allowed)"}
NAME_SCHEMA = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", "description": "a CA name of the config"}


def _text_schema(n: int) -> dict:
    return {"type": "string", "minLength": 1, "maxLength": n}


def _langs_schema(langs: tuple[str, ...], n: int) -> dict:
    return {"type": "object", "additionalProperties": False, "required": list(langs),
            "properties": {lang: _text_schema(n) for lang in langs}}


ISSUER = Field("issuer", NAME_SCHEMA, parse_name, required=True)
SERIAL = Field("serial", SERIAL_SCHEMA, parse_serial, required=True)


def certificates_field(max_batch: int) -> Field:
    item = {"type": "object", "additionalProperties": False, "minProperties": 1, "maxProperties": 1,
            "properties": {"pem": {"type": "string", "minLength": 1},
                           "der": {"type": "string", "contentEncoding": "base64", "pattern": B64_PATTERN}}}

    def parse(value: Any) -> list[tuple[bytes, str]]:
        if not isinstance(value, list) or not 1 <= len(value) <= max_batch:
            raise ValueError(f"must be a list of 1 to {max_batch} certificates (admin.max_batch)")
        out = []
        count = 0
        for i, v in enumerate(value):
            if not isinstance(v, dict) or len(v) != 1 or not set(v) <= {"pem", "der"}:
                raise ValueError(f"[{i}]: must be an object with one of pem (text) or der (base64)")
            if "pem" in v:
                if not isinstance(v["pem"], str) or not v["pem"].strip() or not v["pem"].isascii():
                    raise ValueError(f"[{i}].pem: must be PEM text")
                # A PEM item may hold a bundle: every certificate in it counts towards the cap.
                count += max(1, v["pem"].count("-----BEGIN "))
                if count > max_batch:
                    raise ValueError(f"more than {max_batch} certificates in all (admin.max_batch), "
                                     f"counting those in PEM bundles")
                out.append((v["pem"].encode("ascii"), f"certificates[{i}]"))
            else:
                count += 1
                if count > max_batch:
                    raise ValueError(f"more than {max_batch} certificates in all (admin.max_batch)")
                try:
                    out.append((parse_base64(v["der"]), f"certificates[{i}]"))
                except ValueError as e:
                    raise ValueError(f"[{i}].der: {e}") from None
        return out

    return Field("certificates", {"type": "array", "minItems": 1, "maxItems": max_batch, "items": item}, parse,
                 required=True)


@dataclass(frozen=True)
class Route:
    """One operation: where, who may call it, what its body holds, what it answers."""

    op: str  # operationId, also the handler's name
    method: str
    path: str  # under PREFIX, with {param}s
    summary: str
    roles: tuple[str, ...]
    body: Body | None = None
    idempotency: str | None = None  # "required", "optional" or None (no change: no key)
    success: int = 200
    answer: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    path_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    query: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    errors: tuple[int, ...] = (400, 401, 403, 404, 409, 413, 422, 503)
    changes: bool = True  # refused during a maintenance window (the maintenance routes are not)


CERT_STATUS = {
    "type": "object",
    "required": ["issuer", "serial", "status"],
    "properties": {
        "issuer": {"type": "string"}, "serial": {"type": "string"},
        "status": {"enum": ["good", "revoked", "hold"]},
        "reason": {"type": ["string", "null"]},
        "revoked_at": {"type": ["string", "null"]}, "invalidity_date": {"type": ["string", "null"]},
    },
}
WINDOW = {"type": "object", "required": ["id", "kind", "start", "state", "reason"],
          "properties": {"id": {"type": "integer"}, "kind": {"type": "string"}, "start": {"type": "string"},
                         "end": {"type": ["string", "null"]}, "state": {"type": "string"},
                         "reason": {"type": "string"}}}


def routes(*, max_batch: int, document_kinds: tuple[str, ...], notice_kinds: tuple[str, ...],
           doc_languages: tuple[str, ...], notice_languages: tuple[str, ...]) -> tuple[Route, ...]:
    """Every route of the admin API, for the parser and the document alike."""
    status_fields = (ISSUER, SERIAL)
    serial_path = {"issuer": NAME_SCHEMA, "serial": {"type": "string", "pattern": r"^(0[xX])?[0-9A-Fa-f]{1,40}$"}}
    return (
        Route("add_certificates", "POST", "/certificates",
              "Add certificates (PEM or base64 DER), all or none", ("publisher",),
              Body((certificates_field(max_batch),)), "optional", 201,
              {"type": "object", "required": ["added"], "properties": {"added": {"type": "integer"}}}),
        Route("revoke", "POST", "/revoke", "Revoke a certificate", ("revoker",),
              Body(status_fields + (
                  Field("reason", {"enum": list(REVOKE_REASONS)}, parse_reason),
                  Field("revocation_time", TIME_SCHEMA, parse_time),
                  Field("invalidity_date", TIME_SCHEMA, parse_time))),
              "required", 200, CERT_STATUS),
        Route("hold", "POST", "/hold", "Put a certificate on hold (certificateHold)", ("revoker",),
              Body(status_fields + (Field("hold_time", TIME_SCHEMA, parse_time),)), "required", 200, CERT_STATUS),
        Route("release", "POST", "/release", "Release a certificate from hold", ("revoker",),
              Body(status_fields), "required", 200, CERT_STATUS),
        Route("certificate", "GET", "/certificates/{issuer}/{serial}",
              "A certificate's status, the CRLs that list it, and its history",
              ("publisher", "revoker", "operator", "auditor"), answer=CERT_STATUS, path_params=serial_path,
              errors=(400, 401, 403, 404), changes=False),
        Route("issue_crls", "POST", "/crls/issue", "Issue CRLs now (every one, or one CA's)", ("operator",),
              Body((Field("issuer", NAME_SCHEMA, parse_name),)), "optional", 200,
              {"type": "object", "required": ["issued"], "properties": {"issued": {"type": "array"}}}),
        Route("publish_document", "POST", "/documents", "Publish one version of a disclosure document",
              ("publisher",),
              Body((Field("kind", {"enum": list(document_kinds)}, text(100), required=True),
                    Field("version", _text_schema(50), text(50), required=True),
                    Field("lang", {"enum": list(doc_languages)}, text(20), required=True),
                    Field("effective", {"type": "string", "format": "date"}, parse_date, required=True),
                    Field("oid", {"type": "string", "pattern": r"^[0-2](\.[0-9]{1,9}){1,30}$"}, text(300)),
                    Field("content", {"type": "string", "contentEncoding": "base64", "pattern": B64_PATTERN},
                          parse_base64, required=True))),
              "optional", 201),
        Route("add_notice", "POST", "/notices", "Publish a notice in every language of the pages", ("publisher",),
              Body((Field("kind", {"enum": list(notice_kinds)}, text(40), required=True),
                    Field("title", _langs_schema(notice_languages, 200),
                          languages(notice_languages, 200, one_line=True), required=True),
                    Field("body", _langs_schema(notice_languages, 5000),
                          languages(notice_languages, 5000, one_line=False), required=True),
                    Field("starts", TIME_SCHEMA, parse_time),
                    Field("ends", TIME_SCHEMA, parse_time))),
              "optional", 201),
        Route("withdraw_notice", "POST", "/notices/{id}/withdraw", "Withdraw a notice (its record stays)",
              ("publisher",), None, "optional", 200,
              path_params={"id": {"type": "string", "pattern": r"^[0-9]{1,12}$"}}),
        Route("trustlist_add", "POST", "/trustlist/entries", "List a certificate type of a CA, granted",
              ("publisher",),
              Body((Field("ca", NAME_SCHEMA, parse_name, required=True),
                    Field("type", {"enum": ["personal", "organisation"]}, text(40), required=True),
                    Field("policy_oids", {"type": "array", "minItems": 1, "maxItems": 20,
                                          "items": {"type": "string", "pattern": r"^[0-2](\.[0-9]{1,9}){1,30}$"}},
                          string_list(text(300), 20)),
                    Field("cps_url", {"type": "string", "format": "uri", "maxLength": 2000}, text(2000),
                          required=True),
                    Field("names", _langs_schema(("zh-Hant", "en"), 200),
                          languages(("zh-Hant", "en"), 200, one_line=True), required=True),
                    Field("date", TIME_SCHEMA, parse_time))),
              "optional", 201),
        Route("trustlist_change", "POST", "/trustlist/status", "Suspend, withdraw or reinstate an entry",
              ("publisher",),
              Body((Field("ca", NAME_SCHEMA, parse_name, required=True),
                    Field("type", {"enum": ["personal", "organisation"]}, text(40), required=True),
                    Field("status", {"enum": ["granted", "suspended", "withdrawn"]}, text(20), required=True),
                    Field("date", TIME_SCHEMA, parse_time))),
              "optional", 201),
        Route("maintenance_list", "GET", "/maintenance", "The maintenance windows of the last 7 days and those announced",
              ("operator",), answer={"type": "object", "required": ["windows"],
                                     "properties": {"windows": {"type": "array", "items": WINDOW}}},
              errors=(401, 403), changes=False),
        Route("maintenance_schedule", "POST", "/maintenance", "Announce a maintenance window (within the weekly budget)",
              ("operator",),
              Body((Field("start", TIME_SCHEMA, parse_time, required=True),
                    Field("duration_minutes", {"type": "integer", "minimum": 1, "maximum": 10080},
                          integer(1, 10080), required=True),
                    Field("reason", _text_schema(500), text(500), required=True))),
              "optional", 201, WINDOW, changes=False),
        Route("maintenance_cancel", "POST", "/maintenance/{id}/cancel", "Cancel a window that has not started",
              ("operator",), None, "optional", 200, WINDOW,
              path_params={"id": {"type": "string", "pattern": r"^[0-9]{1,12}$"}}, changes=False),
        Route("maintenance_start", "POST", "/maintenance/emergency", "Start emergency maintenance now",
              ("operator",), Body((Field("reason", _text_schema(500), text(500), required=True),)),
              "optional", 201, WINDOW, changes=False),
        Route("maintenance_end", "POST", "/maintenance/end", "End the window under way", ("operator",),
              Body((Field("reason", _text_schema(500), text(500)),)), "optional", 200, WINDOW, changes=False),
        Route("audit", "GET", "/audit", "The audit trail since a time (JSON lines)", ("auditor",),
              query={"since": TIME_SCHEMA}, errors=(400, 401, 403, 404), changes=False),
    )


PROBLEM = {
    "type": "object", "required": ["type", "title", "status", "detail"],
    "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                   "detail": {"type": "string"}, "field": {"type": "string"}},
}


def openapi(routes_: tuple[Route, ...], *, server_url: str) -> dict:
    """The OpenAPI 3.1 document of these routes."""
    paths: dict[str, dict] = {}
    for r in routes_:
        params = [{"name": n, "in": "path", "required": True, "schema": dict(s)} for n, s in r.path_params.items()]
        params += [{"name": n, "in": "query", "required": False, "schema": dict(s)} for n, s in r.query.items()]
        if r.idempotency:
            params.append({"name": "Idempotency-Key", "in": "header", "required": r.idempotency == "required",
                           "schema": {"type": "string", "pattern": r"^[\x21-\x7e]{1,%d}$" % MAX_KEY},
                           "description": "a retry with the same key is answered as the first request was, "
                                          "changing nothing again; the same key with another body is 422"})
        op: dict[str, Any] = {
            "operationId": r.op, "summary": r.summary,
            "description": f"Role: {' or '.join(r.roles)}.",
            "responses": {str(r.success): {"description": "done",
                                           "content": {"application/json": {"schema": dict(r.answer)}}}},
        }
        for code in r.errors:
            op["responses"][str(code)] = {"description": "refused",
                                          "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        if params:
            op["parameters"] = params
        if r.body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": r.body.schema()}}}
        paths.setdefault(PREFIX + r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "pkirepo admin API", "version": "1",
                 "description": "Changes to the repository, by client certificate (mutual TLS) or bearer token, "
                                "with roles publisher, revoker, operator and auditor. Errors are RFC 9457 "
                                "problem details."},
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": {"Problem": PROBLEM},
            "securitySchemes": {"mutualTLS": {"type": "mutualTLS"}, "bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"mutualTLS": []}, {"bearer": []}],
    }
