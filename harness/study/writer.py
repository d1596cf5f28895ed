"""One background thread that runs a Tune callback's writes, in the order they were submitted.

Tune calls its callbacks inside its result loop: a write that waits on a tracking server there
holds up every trial's next report. `SerialWriter.submit(fn, *args)` queues the call and returns
at once; it waits only while `maxsize` calls are queued (back-pressure, not unbounded memory).
One thread runs the calls in order and, whenever it has emptied the queue (or after `batch`
calls), calls `on_batch()`: the place where a caller sends what its calls gathered, so that under
load many calls share one request. `flush()` returns once every call submitted before it has run
and been sent by `on_batch`. A call (or `on_batch`) that raised makes the next `submit` or `flush`
raise `WriterFailed` naming it; the calls after it are skipped, never half-applied.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

_STOP = None


class WriterFailed(RuntimeError):
    """A write in the background thread raised; the message names the first one."""


class SerialWriter:
    """A bounded queue of calls and the one daemon thread that runs them (module docstring)."""

    def __init__(self, on_batch: Callable[[], None], maxsize: int = 10_000, batch: int = 256,
                 name: str = "serial-writer"):
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._on_batch = on_batch
        self._batch = batch
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable, *args) -> None:
        self._raise_failure()
        if not self._thread.is_alive():
            raise WriterFailed("the writer was closed")
        self._queue.put((fn, args))

    def flush(self) -> None:
        """Wait until every call submitted so far has run and its batch was sent."""
        self._queue.join()
        self._raise_failure()

    def close(self) -> None:
        """Flush, then end the thread (a closed writer takes no more calls)."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        self._raise_failure()

    @property
    def pending(self) -> int:
        """Calls submitted and not yet sent (an estimate while the thread runs)."""
        return self._queue.unfinished_tasks

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise WriterFailed(f"a background write failed: {self._failure!r}") from self._failure

    def _guarded(self, fn: Callable, *args) -> None:
        if self._failure is None:
            try:
                fn(*args)
            except BaseException as error:  # kept for the caller's thread, which re-raises it
                self._failure = error

    def _run(self) -> None:
        unsent = 0  # calls run whose writes `on_batch` has not sent yet
        while True:
            item = self._queue.get()
            if item is not _STOP:
                self._guarded(item[0], *item[1])
            unsent += 1
            if item is _STOP or unsent >= self._batch or self._queue.empty():
                self._guarded(self._on_batch)
                for _ in range(unsent):
                    self._queue.task_done()
                unsent = 0
            if item is _STOP:
                return
