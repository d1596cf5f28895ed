"""The background writer under the MLflow recorder: order, batches, flush, failures,
back-pressure (the recorder's own test of it: tests/test_tracking.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from harness.study.writer import SerialWriter, WriterFailed


def test_calls_run_in_order_and_flush_waits_for_their_batch():
    done, sent = [], []
    writer = SerialWriter(on_batch=lambda: sent.append(list(done)))
    for i in range(500):
        writer.submit(done.append, i)
    writer.flush()
    assert done == list(range(500))
    assert sent and sent[-1] == done  # the last batch went out after the last call
    writer.close()


def queued_behind_a_batch(batch: int) -> tuple[list[int], list[int], int]:
    """Call 0 runs and its batch waits at a gate while calls 1-99 queue up; then the gate opens.
    (the calls run, len(calls run) at each batch sent, calls pending while the gate held)"""
    gate, sent, done = threading.Event(), [], []

    def on_batch():
        gate.wait(5)
        sent.append(len(done))

    writer = SerialWriter(on_batch=on_batch, batch=batch)
    writer.submit(done.append, 0)
    time.sleep(0.2)  # the thread ran call 0 and waits in its batch
    for i in range(1, 100):
        writer.submit(done.append, i)
    pending = writer.pending
    gate.set()
    writer.flush()
    flushed = list(sent)
    writer.close()  # its stop item gets a batch of its own
    return done, flushed, pending


def test_calls_queued_while_a_batch_is_sent_share_the_next_batch():
    done, sent, pending = queued_behind_a_batch(batch=1000)
    assert pending == 100
    assert done == list(range(100)) and sent == [1, 100]  # 99 calls, one batch


def test_a_failed_call_is_raised_in_the_callers_thread_and_later_calls_are_skipped():
    done = []

    def broken(_):
        raise OSError("store down")

    writer = SerialWriter(on_batch=lambda: None)
    writer.submit(done.append, 1)
    writer.submit(broken, 2)
    writer.submit(done.append, 3)
    with pytest.raises(WriterFailed, match="store down"):
        writer.flush()
    assert done == [1]
    with pytest.raises(WriterFailed):
        writer.submit(done.append, 4)


def test_a_full_queue_makes_submit_wait_and_a_closed_writer_refuses():
    gate = threading.Event()
    writer = SerialWriter(on_batch=lambda: None, maxsize=2)
    writer.submit(gate.wait, 5)  # taken by the thread, which now waits
    time.sleep(0.1)
    writer.submit(lambda: None)
    writer.submit(lambda: None)  # the queue holds 2
    blocked = threading.Thread(target=writer.submit, args=(lambda: None,))
    blocked.start()
    blocked.join(0.3)
    assert blocked.is_alive()  # back-pressure: waits for room
    gate.set()
    blocked.join(5)
    assert not blocked.is_alive()
    writer.close()
    with pytest.raises(WriterFailed, match="closed"):
        writer.submit(lambda: None)


def test_a_long_queue_is_sent_every_batch_calls_not_only_when_it_empties():
    done, sent, _ = queued_behind_a_batch(batch=10)
    assert done == list(range(100)) and sent == [1, *range(11, 100, 10), 100]


WRITER_LEFT_HANGING = """
import threading, time
from harness.study.writer import SerialWriter
writer = SerialWriter(on_batch=lambda: None)
writer.submit(threading.Event().wait)  # a store that never answers
time.sleep(0.2)
print("exiting")
"""


def test_a_hung_write_never_keeps_the_driver_from_exiting():
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", WRITER_LEFT_HANGING], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "exiting", done.stderr
    assert time.monotonic() - started < 30
