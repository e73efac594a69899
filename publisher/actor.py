"""Who changed the repository, and the port through which every change is put on record.

The CP requires every repository update and CRL publication to be an audited event naming
who made it (CPS 2.5.2, 4.5; CP 七.16-24). The service layer takes an `Actor` on each change
and hands the outcome to an `AuditSink`; the admin API, the CLI and the server's own schedule
each say who they act for, so the record is the same whichever way a change arrived."""
from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from typing import Literal, Mapping, Protocol

ActorKind = Literal["certificate", "token", "os-user", "system"]


@dataclass(frozen=True)
class Actor:
    """`name` is the client certificate's subject, the token's name, the operating-system
    user or the server part acting on its own (`schedule`, `presigner`); `source` is the
    remote address when the change came over the network."""
    kind: ActorKind
    name: str
    source: str | None = None

    def __str__(self) -> str:
        where = f" from {self.source}" if self.source else ""
        return f"{self.kind}:{self.name}{where}"


SYSTEM = Actor("system", "pkirepo")


def os_user() -> Actor:
    """The operator running the CLI on the repository host."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = f"uid {os.getuid()}"
    return Actor("os-user", name)


class AuditSink(Protocol):
    async def record(self, actor: Actor, action: str, obj: str, result: str,
                     detail: Mapping[str, object] | None = None) -> None:
        """Put one event on record. `result` is "ok" or the refusal's reason."""


class NoAudit:
    """For tools that change nothing on anyone's behalf (reading, benchmarks)."""

    async def record(self, actor: Actor, action: str, obj: str, result: str,
                     detail: Mapping[str, object] | None = None) -> None:
        return None
