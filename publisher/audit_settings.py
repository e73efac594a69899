"""The `[audit]` section: how long the audit trail is kept, how often its head is signed,
with which key, and where the newest checkpoint is written for the operator to ship off
the host. Read from the shared `Table` tree like every part's section."""
from __future__ import annotations

import datetime as dt
import math
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from . import audit
from .config import Table
from .errors import ConfigError

#: CP 七.16-24: audit records are kept seven years; the config may only keep them longer.
MIN_RETENTION_YEARS = 7


@dataclass(frozen=True)
class AuditSettings:
    retention: dt.timedelta = dt.timedelta(days=math.ceil(365.25 * MIN_RETENTION_YEARS))
    # How often the head is signed while serving (also at every CRL issued).
    checkpoint_interval: dt.timedelta = dt.timedelta(hours=1)
    # PEM private key (Ed25519 or EC P-256) that signs checkpoints; None: no checkpoints.
    checkpoint_key: Path | None = None
    # PEM public keys of earlier checkpoint keys, newest first: their checkpoints still verify.
    checkpoint_previous_keys: tuple[Path, ...] = ()
    # The newest checkpoint as JSON; None: beside the store (see load_audit_settings).
    checkpoint_file: Path | None = None
    source: Path | None = None  # the config file, for messages


def load_audit_settings(top: Table, *, state_dir: Path) -> AuditSettings:
    """`[audit]`: `retention` in years (at least 7), `checkpoint_interval` in minutes,
    `checkpoint_key`, `checkpoint_previous_keys`, `checkpoint_file` (default:
    audit-checkpoint.json beside the store)."""
    t = top.table("audit")
    years = t.int("retention", MIN_RETENTION_YEARS)
    if years < MIN_RETENTION_YEARS:
        raise t.error("retention", f"{years} years is below the {MIN_RETENTION_YEARS} years the CP requires "
                                   f"audit records to be kept")
    minutes = t.int("checkpoint_interval", 60, min=1, max=24 * 60)
    s = AuditSettings(
        retention=dt.timedelta(days=math.ceil(365.25 * years)),
        checkpoint_interval=dt.timedelta(minutes=minutes),
        checkpoint_key=t.path("checkpoint_key"),
        checkpoint_previous_keys=t.list_path("checkpoint_previous_keys"),
        checkpoint_file=t.path("checkpoint_file") or state_dir / "audit-checkpoint.json",
        source=t.source,
    )
    t.check_unknown()
    return s


def load_checkpoint_key(s: AuditSettings):
    """The configured checkpoint key (None when none is configured); ConfigError naming
    `audit.checkpoint_key` when it cannot be read, is readable by others or is not Ed25519
    or EC P-256."""
    if s.checkpoint_key is None:
        return None
    path = s.checkpoint_key
    what = f"{s.source}: audit.checkpoint_key"
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{what}: cannot read key file {path}: {e.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{what}: key file {path} is accessible by group or others "
                          f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: {path}: not an unencrypted PEM private key") from None
    try:
        audit.algorithm_of(key)
    except ValueError as e:
        raise ConfigError(f"{what}: {path}: {e}") from None
    return key


def load_checkpoint_keys(s: AuditSettings, current=None) -> audit.CheckpointKeys:
    """The keys checkpoints are verified with: the public half of `current` (the loaded
    `audit.checkpoint_key`, if any), then `audit.checkpoint_previous_keys` in their order;
    ConfigError naming the key and file that cannot be read or is not a checkpoint key."""
    keys = [] if current is None else [current.public_key()]
    what = f"{s.source}: audit.checkpoint_previous_keys"
    for path in s.checkpoint_previous_keys:
        keys.append(load_public_key(path, what))
    return audit.CheckpointKeys(keys)


def load_public_key(path: Path, what: str):
    """A PEM public key (Ed25519 or EC P-256) that checks checkpoints, away from its private
    half; ConfigError starting with `what` otherwise."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{what}: cannot read {path}: {e.strerror}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: {path}: not a PEM public key (the retired key's public half: "
                          f"openssl pkey -in OLD.key -pubout)") from None
    try:
        audit.algorithm_of(key)
    except ValueError as e:
        raise ConfigError(f"{what}: {path}: {e}") from None
    return key
