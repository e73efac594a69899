"""Helpers for the OCSP interop tests: real clients (openssl ocsp, curl) against a running
`pkirepo serve`, with the demo made by `pkirepo demo init`."""
from __future__ import annotations

import base64
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

ROOT = "RootCA2"
CA = "eCertCA2-17"
LINT_OCSP = str(Path(sys.executable).parent / "lint_ocsp_response")


def openssl(*args, check: bool = False) -> subprocess.CompletedProcess:
    proc = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"openssl {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def _request_args(demo, certs, issuer: str, nonce: bool, serials, digest: str | None = None) -> list:
    """The request part of an `openssl ocsp` command line."""
    args = ["ocsp", "-issuer", demo.pki / f"{issuer}.pem"]
    if digest:
        args.append(f"-{digest}")  # must come before -cert
    for c in certs:
        args += ["-cert", demo.pki / c]
    for s in serials:
        args += ["-serial", hex(s)]
    if not nonce:
        args.append("-no_nonce")
    return args


def query(demo, *certs: str, issuer: str = CA, nonce: bool = True, digest: str | None = None,
          serials: tuple[int, ...] = (), extra: tuple = ()) -> subprocess.CompletedProcess:
    """`openssl ocsp -issuer ... -cert ... -url .../ocsp -CAfile root` as a relying party runs it."""
    args = _request_args(demo, certs, issuer, nonce, serials, digest)
    args += ["-url", f"{demo.base_url}/ocsp", "-CAfile", demo.pki / f"{ROOT}.pem", *extra]
    return openssl(*args)


def verified(proc: subprocess.CompletedProcess) -> bool:
    # openssl may exit 0 after a failed verification: read the text (STYLE.md §12).
    text = proc.stdout + proc.stderr
    return proc.returncode == 0 and "Response verify OK" in text and "WARNING" not in text and "error" not in text.lower()


def request_der(demo, out: Path, *certs: str, issuer: str = CA, nonce: bool = False,
                serials: tuple[int, ...] = ()) -> bytes:
    """A request written by `openssl ocsp -reqout`."""
    args = _request_args(demo, certs, issuer, nonce, serials)
    args += ["-reqout", out]
    openssl(*args, check=True)
    return out.read_bytes()


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    body: bytes


def curl(url: str, *args: str, tmp: Path) -> HttpResult:
    """One request with curl; headers and body as curl received them."""
    hdr, body = tmp / "curl-headers.txt", tmp / "curl-body.bin"
    for p in (hdr, body):
        p.unlink(missing_ok=True)
    proc = subprocess.run(
        ["curl", "-sS", "--path-as-is", "-D", str(hdr), "-o", str(body), "-w", "%{http_code}", *args, url],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    headers = {}
    for line in hdr.read_text(errors="replace").splitlines()[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return HttpResult(int(proc.stdout), headers, body.read_bytes() if body.exists() else b"")


def post(demo, data: bytes, tmp: Path, *, content_type: str = "application/ocsp-request", extra=()) -> HttpResult:
    src = tmp / "post-body.bin"
    src.write_bytes(data)
    return curl(f"{demo.base_url}/ocsp", "--data-binary", f"@{src}", "-H", f"Content-Type: {content_type}",
                *extra, tmp=tmp)


def get_url(demo, data: bytes, *, encode: bool = False) -> str:
    b64 = base64.b64encode(data).decode()
    return f"{demo.base_url}/ocsp/{urllib.parse.quote(b64, safe='') if encode else b64}"


def respin(demo, resp: Path, *, req: Path | None = None, issuer: str = CA, certs: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`openssl ocsp -respin`: verify a response fetched by other means."""
    args = ["ocsp", "-respin", resp, "-CAfile", demo.pki / f"{ROOT}.pem"]
    if req is not None:
        # Without -issuer, openssl needs the issuing CA to chain the responder to the root.
        args += ["-reqin", req, "-verify_other", demo.pki / f"{issuer}.pem"]
    else:
        args += ["-issuer", demo.pki / f"{issuer}.pem", "-no_nonce"]
        for c in certs:
            args += ["-cert", demo.pki / c]
    return openssl(*args)


def lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LINT_OCSP, "lint", str(path)], capture_output=True, text=True, timeout=120)
