"""Let a TLS server accept any client certificate at the handshake, so that the application
can refuse a certificate it does not trust with an HTTP answer (a 401 problem naming why)
instead of a bare TLS alert that tells the caller nothing.

Python's `ssl` module offers no verify callback: with client certificates requested,
OpenSSL aborts the handshake on any certificate whose chain does not reach the loaded CAs.
OpenSSL itself lets a callback overrule that verdict, so this module installs one, through
ctypes, on the context's `SSL_CTX` (the first field after the object header of CPython's
`_ssl._SSLContext`; Python keeps an installed callback when `verify_mode` changes). The
handshake still proves that the client holds the certificate's key (CertificateVerify is
checked whatever the callback says); only the chain verdict moves to the application
(`admin_auth.from_certificate`).

The pointer is checked before use: the `SSL_CTX` found there must report the verify mode
and options that Python set. If anything does not match (another Python build, another
OpenSSL), nothing is installed and the caller keeps OpenSSL's own verdict: unknown CAs are
then refused by the handshake, as before."""
from __future__ import annotations

import ctypes
import logging
import ssl
import sys

log = logging.getLogger("pkirepo")

_SSL_VERIFY_PEER = 0x01
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


@_CALLBACK
def _accept(preverify_ok: int, store_ctx: int) -> int:
    # Every chain is let through: the application checks it against its trusted CAs.
    return 1


def _libssl() -> ctypes.CDLL | None:
    """The libssl that Python's `_ssl` module is linked with (already in this process)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/libssl.so" in line}
    except OSError:
        return None
    if len(paths) != 1:
        return None
    lib = ctypes.CDLL(paths.pop())
    lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _CALLBACK]
    lib.SSL_CTX_set_verify.restype = None
    lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
    lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_options.restype = ctypes.c_uint64
    return lib


def accept_any_client_certificate(ctx: ssl.SSLContext) -> bool:
    """Install the accepting callback on `ctx` (whose verify_mode must already ask for a
    client certificate). True when installed; False when this Python or OpenSSL does not
    allow it (then the handshake keeps refusing unknown CAs)."""
    if ctx.verify_mode is ssl.CERT_NONE or sys.implementation.name != "cpython":
        return False
    lib = _libssl()
    if lib is None:
        log.info("admin API: libssl not found in this process; certificates from unknown CAs are refused by "
                 "the TLS handshake")
        return False
    pointer = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not pointer or lib.SSL_CTX_get_verify_mode(pointer) != _SSL_VERIFY_PEER \
            or lib.SSL_CTX_get_options(pointer) != int(ctx.options):
        log.info("admin API: this Python's TLS context is not laid out as expected; certificates from unknown "
                 "CAs are refused by the TLS handshake")
        return False
    lib.SSL_CTX_set_verify(pointer, _SSL_VERIFY_PEER, _accept)
    return True
