"""One run at a time per warehouse: a lock file beside it, naming its holder.

`<warehouse>.lock` holds the run id, host, pid and start time of the run that took it. It
is created atomically (written to a temporary file, then hard-linked into place, which
fails if the lock exists), so it is never seen half-written. A second run fails at once
with `WarehouseLocked`, naming the holder; the CLI exits with `LOCKED_EXIT_CODE`. A lock
whose holder is a dead process on this host (or a live pid that started after the lock
was taken: the pid was reused) is stale, and is cleared with a warning.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from linkage.errors import LinkageError

log = logging.getLogger(__name__)

LOCKED_EXIT_CODE = 75  # EX_TEMPFAIL: another run holds the warehouse; try again later


@dataclass(frozen=True)
class LockHolder:
    run_id: str
    host: str
    pid: int
    started_at: str  # ISO 8601, UTC
    process_start: int | None = None  # the pid's start (clock ticks since boot), if known

    def describe(self) -> str:
        return f"run {self.run_id} (host {self.host}, pid {self.pid}, started {self.started_at})"


class WarehouseLocked(LinkageError):
    """Another run holds the warehouse."""

    def __init__(self, lock_path: Path, holder: LockHolder | None) -> None:
        self.lock_path, self.holder = lock_path, holder
        who = holder.describe() if holder else "an unreadable lock"
        super().__init__(
            f"{lock_path}: the warehouse is in use by {who}; wait for it to finish"
            " (remove the lock file only if that run is certainly gone)"
        )


def lock_path_of(warehouse: Path) -> Path:
    return warehouse.with_name(warehouse.name + ".lock")


@contextmanager
def warehouse_lock(warehouse: Path, run_id: str) -> Iterator[LockHolder]:
    """Hold the warehouse's lock for the body; raise WarehouseLocked if another run has it."""
    path = lock_path_of(warehouse)
    holder = acquire(path, run_id)
    try:
        yield holder
    finally:
        release(path, holder)


def acquire(path: Path, run_id: str) -> LockHolder:
    pid = os.getpid()
    holder = LockHolder(
        run_id,
        socket.gethostname(),
        pid,
        datetime.now(UTC).isoformat(timespec="seconds"),
        _process_start(pid),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):  # a second try after clearing a stale lock
        if _create(path, holder):
            return holder
        current = read_holder(path)
        if current is None or not is_stale(current):
            raise WarehouseLocked(path, current)
        log.warning("cleared a stale warehouse lock: %s is no longer running", current.describe())
        path.unlink(missing_ok=True)
    raise WarehouseLocked(path, read_holder(path))


def release(path: Path, holder: LockHolder) -> None:
    """Remove the lock if it is still ours (never another run's)."""
    if read_holder(path) == holder:
        path.unlink(missing_ok=True)


def read_holder(path: Path) -> LockHolder | None:
    try:
        return LockHolder(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def _create(path: Path, holder: LockHolder) -> bool:
    """Write the holder to a temporary file and link it into place; False if the lock exists."""
    temporary = path.with_name(f"{path.name}.{holder.pid}.{holder.run_id}.tmp")
    temporary.write_text(json.dumps(asdict(holder)) + "\n", encoding="utf-8")
    try:
        os.link(temporary, path)
        return True
    except FileExistsError:
        return False
    finally:
        temporary.unlink(missing_ok=True)


def is_stale(holder: LockHolder) -> bool:
    """Only a holder on this host can be checked: a dead pid, or a reused one."""
    if holder.host != socket.gethostname():
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    started = _process_start(holder.pid)
    return None not in (started, holder.process_start) and started != holder.process_start


def _process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux /proc), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces: fields after its closing parenthesis
    return int(stat.rsplit(")", 1)[1].split()[19])
