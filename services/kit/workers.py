"""Worker processes that live and die with their service.

A `spawn` pool's worker holds its own end of the pipe its work comes on, so it never
sees end-of-file when the service is killed: it would live on, an orphan, holding the
resource tracker with it. Each worker here watches for its parent to go and exits
then, and ignores the terminal's Ctrl-C, which reaches every process of the group:
the service stops its workers as it stops, so none dies on its own with a traceback.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal
import threading
import time

PARENT_CHECK_SECONDS = 1.0


def process_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """A pool of `workers` fresh interpreters (spawned: no copy of this process's threads)."""
    return concurrent.futures.ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(os.getpid(),),
    )


def _start_worker(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(
        target=_exit_with, args=(parent,), name="exit-with-parent", daemon=True
    ).start()


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)  # the service is gone: nobody waits for this worker's answers
