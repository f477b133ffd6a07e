"""A lock file holding its owner's PID, so that two processes never write one folder at once (``flare run``)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Iterator

from flare.core.errors import FlareError

__all__ = ["pid_lock"]


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    except OSError:
        return False
    return True


@contextlib.contextmanager
def pid_lock(lock: Path, what: str, holder: str, log: Callable[[str], None]) -> Iterator[None]:
    """Hold ``lock`` (our PID, created with ``O_CREAT | O_EXCL``) while the block runs.

    A lock whose PID is alive refuses with one line naming it (``what`` is in use by another ``holder``); a lock
    whose PID is gone (or that holds no PID) is taken over with a warning through ``log``. Released on exit,
    only if it is still ours."""
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                text = lock.read_text().strip()
            except OSError:
                text = ""
            pid = int(text) if text.isdigit() else -1
            if pid == os.getpid() or _pid_alive(pid):
                raise FlareError(f"{what} is in use by another {holder} (PID {pid}, {str(lock)!r}); wait for it "
                                 f"to finish, or delete the lock if that process is not {holder}") from None
            log(f"warning: taking over a stale lock {lock} (PID {text or '?'} is not running)")
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
            continue
        except OSError as exc:
            raise FlareError(f"{what}: cannot create {lock.name} ({exc.strerror or exc})") from None
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{os.getpid()}\n")
        break
    else:
        raise FlareError(f"{what}: could not take {lock.name}; another {holder} keeps taking it")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if lock.read_text().strip() == str(os.getpid()):
                lock.unlink()
