"""`SigningPool`: where batches of answers are signed, away from the event loop.

With `workers` > 0 (the default of `pkirepo serve`), a process pool whose children load the
responder keys once (`batch_signer.worker_init`) and then receive only `SignJob` tuples and
return bytes: signing a million answers then costs the event loop the pickling of small
tuples, not the signatures, and does not contend for its GIL. With 0, or with a signer whose
key cannot be handed to a child process, a thread signs (cryptography releases the GIL while
it signs). Before `start()`, batches are signed inline (tests).

A worker process that dies breaks the pool: the batch is signed in a thread instead, and a
new pool is started for the next one.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool

from .batch_signer import BatchSigner, SignJob, WorkerKey
from .responders import IssuerResponder

log = logging.getLogger("pkirepo.ocsp")

#: Worker processes run at this nice level: they may take every idle CPU during a first pass,
#: yet the serving process (its event loop) is scheduled first whenever it has work.
WORKER_NICE = 10

# The pool's worker processes keep their signer here: an initializer has nowhere else to put
# what every later task of the same process uses. Only ever set inside a worker process.
_WORKER: list[BatchSigner] = []


def worker_init(keys: Sequence[WorkerKey], parent: int | None = None) -> None:
    """ProcessPoolExecutor initializer: step back in priority, load the responder keys once,
    and leave when `parent` (the serving process) is gone."""
    try:
        os.nice(WORKER_NICE)
    except OSError:
        pass
    _WORKER[:] = [BatchSigner.from_keys(keys)]
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent,), name="ocsp-sign-parent", daemon=True).start()


#: How often a signing process checks that the serving process still lives.
PARENT_CHECK_SECONDS = 1.0


def _exit_with(parent: int) -> None:
    # A serving process killed outright (SIGKILL, the OOM killer) cannot stop its pool, and
    # the pool's queue never reports the loss (each child holds both of its ends): without
    # this, its signing processes would live on, orphans holding the responder keys.
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def worker_sign(jobs: Sequence[SignJob]) -> list[bytes]:
    """The task a worker process runs for one batch."""
    return _WORKER[0].sign(jobs)

def worker_ready() -> None:
    """A task that does nothing: submitting it makes the pool start a process."""


def _start_workers(pool: concurrent.futures.ProcessPoolExecutor, n: int) -> None:
    for _ in range(n):
        try:
            pool.submit(worker_ready)
        except RuntimeError:  # closed meanwhile
            return


#: Jobs per task sent to a worker: large enough that the round trip is noise next to the
#: signatures, small enough that every worker gets a share of a batch.
CHUNK = 64


class SigningPool:
    """Signs `SignJob`s for the CAs of `start()`'s responders."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._local = BatchSigner(())
        self._threads: concurrent.futures.ThreadPoolExecutor | None = None
        self._processes: concurrent.futures.ProcessPoolExecutor | None = None
        self._keys: list[WorkerKey] = []

    @property
    def mode(self) -> str:
        return "processes" if self._processes is not None else "thread" if self._threads is not None else "inline"

    def set_responders(self, responders: Mapping[int, IssuerResponder]) -> None:
        """Sign for these CAs (inline until `start()`)."""
        usable = [r for r in responders.values() if r.identity is not None]
        self._local = BatchSigner((r.issuer_id, r.identity.signer, r.identity.key_hash, r.ca_certificate_der)
                                  for r in usable)
        keys = []
        for r in usable:
            export = getattr(r.identity.signer, "private_key_der", None)
            if export is None:  # e.g. a key that never leaves an HSM: sign in this process
                keys = None
                break
            keys.append(WorkerKey(r.issuer_id, export(), r.identity.key_hash, r.ca_certificate_der))
        self._keys = keys or []
        self._exportable = keys is not None

    def start(self, responders: Mapping[int, IssuerResponder]) -> None:
        self.set_responders(responders)
        self._threads = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="ocsp-sign")
        if self.workers > 0 and self._exportable and self._keys:
            self._start_processes()

    def _start_processes(self) -> None:
        # spawn, not fork: the parent runs threads (SQLite, the thread pool) whose locks a
        # forked child could inherit held.
        self._processes = concurrent.futures.ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=worker_init,
            initargs=(self._keys, os.getpid()),
        )
        # The executor starts a process on a submit that finds none idle, in the submitting
        # thread: a fork and exec of this whole process, tens of milliseconds that would
        # hold the event loop if its first batches started them. Started from a thread now.
        threading.Thread(target=_start_workers, args=(self._processes, self.workers),
                         name="ocsp-sign-start", daemon=True).start()

    def close(self) -> None:
        """Stop the workers: what runs finishes, what waits is dropped; no process is left."""
        if self._processes is not None:
            self._processes.shutdown(wait=True, cancel_futures=True)
            self._processes = None
        if self._threads is not None:
            self._threads.shutdown(wait=True, cancel_futures=True)
            self._threads = None

    async def sign(self, jobs: Sequence[SignJob]) -> list[bytes]:
        """The stored form of each job's answer, in order."""
        if not jobs:
            return []
        loop = asyncio.get_running_loop()
        if self._processes is not None:
            pool = self._processes
            chunks = [jobs[i:i + CHUNK] for i in range(0, len(jobs), CHUNK)]
            try:
                parts = await asyncio.gather(*(loop.run_in_executor(pool, worker_sign, c) for c in chunks))
                return [s for part in parts for s in part]
            except BrokenProcessPool:
                log.error("OCSP: a signing worker process died; signing in a thread and restarting the pool")
                if self._processes is pool:
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._start_processes()
        if self._threads is not None:
            return await loop.run_in_executor(self._threads, self._local.sign, jobs)
        return self._local.sign(jobs)

    async def sign_now(self, jobs: Sequence[SignJob]) -> list[bytes]:
        """Sign a few jobs for a request waiting on them: in a thread of this process, so that
        they never queue behind the pre-signer's batches in the worker processes."""
        if self._threads is None:
            return self._local.sign(jobs)
        return await asyncio.get_running_loop().run_in_executor(self._threads, self._local.sign, jobs)

    def sign_inline(self, jobs: Sequence[SignJob]) -> list[bytes]:
        return self._local.sign(jobs)

    def pids(self) -> list[int]:
        """The worker processes' ids (for tests that check none is left behind)."""
        if self._processes is None:
            return []
        return [p.pid for p in getattr(self._processes, "_processes", {}).values()]
