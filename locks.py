"""Run locks: a second run writing the same output fails at once; a lock left by a killed run is cleared."""
import contextlib
import errno
import os

from cli import InputError


@contextlib.contextmanager
def run_lock(path):
    """Hold path.lock for the duration of a run: a second run with the same output name fails at once."""
    lock = f"{os.fspath(path)}.lock"
    os.makedirs(os.path.dirname(lock) or ".", exist_ok=True)
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        pid = _lock_owner(lock)
        if pid is not None and _alive(pid):
            raise InputError(f"{path}: another run (pid {pid}) is writing it; wait for it or choose another name") from None
        os.remove(lock)  # a stale lock from a run that was killed
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.remove(lock)


def _lock_owner(lock):
    try:
        with open(lock) as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM
    return True
