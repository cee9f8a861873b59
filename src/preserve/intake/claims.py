"""Worker claims on submissions: who a worker is, whether a claim's holder is still alive, and the
heartbeat that keeps a long ingest's lease from running out. Side effects: the heartbeat thread
renews the lease in the catalog; `holder_is_dead` sends signal 0 to a local process."""

from __future__ import annotations

import os
import socket
import threading
import uuid

from preserve.catalog import Catalog
from preserve.core.errors import PreserveError


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_dead(holder: str) -> bool:
    """True when a claim's holder is a process on this host that no longer exists (killed -9)."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class LeaseHeartbeat:
    """Renews the claim's lease every third of its length while the ingest runs, so a step
    longer than the lease (a six-hour decode check) is never taken over by a second watcher while
    its worker is alive. A killed worker stops renewing, and its lease runs out."""

    def __init__(self, catalog: Catalog, key: str, worker: str, lease_seconds: float) -> None:
        self._args = (key, worker, lease_seconds)
        self._catalog, self._stop = catalog, threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease {key}", daemon=True)
        #: set once a renewal found the claim held by another worker (see `ClaimLost`)
        self.lost = threading.Event()

    def _run(self) -> None:
        while not self._stop.wait(max(1.0, self._args[2] / 3)):
            try:
                if not self._catalog.renew_lease(*self._args):
                    self.lost.set()
            except PreserveError:
                pass  # the catalog is busy or down: the next beat tries again

    def __enter__(self) -> LeaseHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
