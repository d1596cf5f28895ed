"""Ray's memory monitor killing a trial's worker (the node above its memory threshold): how the
driver and the progress lines name it, from the text of Ray's OutOfMemoryError.

Ray says "... Memory on the node (IP: ..., ID: ...) was 22.81GB used / 23.54GB limit (0.97)"
and ends its message with advice; the progress line keeps "22.81GB used / 23.54GB limit".
"""

from __future__ import annotations

import re

USAGE = re.compile(r"was ([\d.]+ ?GB used / [\d.]+ ?GB limit)")
LOW_MEMORY = "running low on memory"


def memory_usage(text: str) -> str | None:
    """"22.81GB used / 23.54GB limit" when `text` is Ray's message of a worker killed for
    memory ("the node ran low on memory" without the figures); None for any other text."""
    if LOW_MEMORY not in text:
        return None
    usage = USAGE.search(text)
    return usage.group(1) if usage else "the node ran low on memory"


def memory_kill(error: BaseException) -> str | None:
    """`memory_usage` of the OutOfMemoryError behind `error`, where Tune gave up on a worker
    Ray's memory monitor killed (Tune handles no OutOfMemoryError from a running trial and
    raises it as a RuntimeError); None for any other error."""
    from ray.exceptions import OutOfMemoryError

    if not isinstance(error.__cause__, OutOfMemoryError):
        return None
    return memory_usage(str(error.__cause__)) or "the node ran low on memory"
