"""systemd's notification protocol (sd_notify(3)), for `Type=notify` units: one datagram of
`KEY=value` lines on the Unix socket named by `$NOTIFY_SOCKET`. A name starting with '@' is
in the abstract namespace. Debian 12's systemd (252) has no `Type=notify-reload`, so
`RELOADING=1` / `READY=1` around a reload are sent by us, like everything else. Without
`$NOTIFY_SOCKET` (not started by systemd) every call does nothing."""
from __future__ import annotations

import logging
import os
import socket
import time
from typing import Mapping

log = logging.getLogger("pkirepo")


def notify(state: str, *, env: Mapping[str, str] | None = None) -> bool:
    """Send `state` (e.g. "READY=1"); True if it was sent. A failure to send is logged,
    never raised: the service keeps serving even if its manager went away."""
    env = os.environ if env is None else env
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(address)
            s.sendall(state.encode())
    except OSError as e:
        log.warning("cannot notify the service manager (%s): %s", env.get("NOTIFY_SOCKET"), e)
        return False
    return True


def reloading(*, env: Mapping[str, str] | None = None) -> bool:
    """RELOADING=1 with the monotonic time systemd 253+ asks for (older ones ignore it)."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}", env=env)


def watchdog_interval(*, env: Mapping[str, str] | None = None) -> float | None:
    """How often to send WATCHDOG=1 (half of `$WATCHDOG_USEC`), or None when the manager
    watches nothing, or watches another process (`$WATCHDOG_PID`)."""
    env = os.environ if env is None else env
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2_000_000
