"""Logs: human-readable lines by default, or one JSON object per line (`--log-format json`),
and a request id on every line logged while a request is answered.

The id comes from the client's `X-Request-ID` when it is well-formed (so that a proxy's id
follows the request through), otherwise it is made here; it is echoed in the response. A
context variable carries it, so every task the request's handler awaits logs it too."""
from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import secrets

from aiohttp import web

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("pkirepo_request_id", default=None)
HEADER = "X-Request-ID"
# Letters, digits and -_.:/+= (UUIDs, trace ids, base64), at most 128: never anything that
# could break a log line or a header.
VALID_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
HUMAN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def request_id_for(incoming: str | None) -> str:
    if incoming is not None and VALID_ID.match(incoming):
        return incoming
    return secrets.token_hex(8)


@web.middleware
async def request_ids(request: web.Request, handler):
    rid = request_id_for(request.headers.get(HEADER))
    token = REQUEST_ID.set(rid)
    try:
        try:
            response = await handler(request)
        except web.HTTPException as e:
            e.headers[HEADER] = rid
            raise
        if not response.prepared:
            response.headers[HEADER] = rid
        return response
    finally:
        REQUEST_ID.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class HumanFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(HUMAN_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        rid = getattr(record, "request_id", None)
        return text if rid is None else f"{text} [request {rid}]"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id,
    and the traceback as one string when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure(level: int, fmt: str) -> None:
    """Log to stderr in `fmt` ("human" or "json")."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else HumanFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
