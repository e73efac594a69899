"""What was already published, read back from outside the store, so that a store restored
from an old backup (or emptied, or replaced) can never make CRL numbers or revocations go
backwards.

Two witnesses, both kept beside the store rather than in it:
- the publication directory: the current CRL of every scope, `crl/<name>.crl`;
- the watermark, `<store file>.published`: the highest CRL number (and its SHA-256) written
  for each scope, updated after every file written, so that a lost publication directory
  still leaves a record.
The repository takes the highest number either shows as the floor of every scope.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from .errors import MalformedInput
from .files import atomic_write


@dataclass(frozen=True)
class Mark:
    """One scope's highest published CRL: its number, the SHA-256 of its bytes, and where
    the mark was found."""

    number: int
    sha256: str
    source: str


def crl_number(der: bytes, source: str) -> int:
    try:
        crl = x509.load_der_x509_crl(der)
        return crl.extensions.get_extension_for_oid(ExtensionOID.CRL_NUMBER).value.crl_number
    except (ValueError, x509.ExtensionNotFound) as e:
        raise MalformedInput(f"{source}: not a CRL with a CRL number ({e})") from None


def read_directory(crl_dir: Path) -> dict[str, Mark]:
    """The CRL number of every `<name>.crl` in the publication directory."""
    marks: dict[str, Mark] = {}
    if not crl_dir.is_dir():
        return marks
    for path in sorted(crl_dir.glob("*.crl")):
        der = path.read_bytes()
        marks[path.stem] = Mark(crl_number(der, str(path)), hashlib.sha256(der).hexdigest(), str(path))
    return marks


class Watermark:
    """The `.published` file beside the store. Several processes (the server, a CLI
    `publish`) may write it; an advisory lock serialises their read-modify-write."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def beside(cls, store_path: Path) -> "Watermark":
        store_path = Path(store_path)
        return cls(store_path.with_name(store_path.name + ".published"))

    def read(self) -> dict[str, Mark]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {name: Mark(int(v["number"]), str(v["sha256"]), str(self.path))
                    for name, v in data["crls"].items()}
        except FileNotFoundError:
            return {}
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise MalformedInput(f"{self.path}: not a pkirepo watermark file ({e}); "
                                 f"move it away only if the publication directory is intact") from None

    def record(self, name: str, number: int, sha256: str) -> None:
        """Raise the mark of `name` to `number` (never lower it)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            marks = self.read()
            old = marks.get(name)
            if old is not None and old.number >= number:
                return
            marks[name] = Mark(number, sha256, str(self.path))
            body = {"crls": {n: {"number": m.number, "sha256": m.sha256} for n, m in sorted(marks.items())}}
            atomic_write(self.path, (json.dumps(body, indent=1) + "\n").encode())
        finally:
            os.close(lock)


def floors(directory: dict[str, Mark], watermark: dict[str, Mark]) -> dict[str, Mark]:
    """Per scope, the higher of the two witnesses (the directory's on a tie: it has the bytes)."""
    out = dict(watermark)
    for name, mark in directory.items():
        if name not in out or mark.number >= out[name].number:
            out[name] = mark
    return out
