"""Give the memory a large reply used back to the system once the call is over.

CPython frees a reply's objects when the call ends, but glibc's allocator keeps the freed heap
for reuse: after a 32 MiB reply the server held about 50 MiB more than its live objects, growing
with each large call (benchmarks/reply_memory.py). ``malloc_trim`` returns it. It walks the heap
under the allocator's lock, so it runs only after large replies.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable

__all__ = ["LARGE_REPLY_CHARS", "release_when_gone"]

LARGE_REPLY_CHARS = 1_000_000


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        import ctypes  # only when a large reply arrived: not an import every start pays for

        return ctypes.CDLL(None).malloc_trim  # glibc; other C libraries have no such call
    except (OSError, AttributeError):
        return None


def _release() -> None:
    if (trim := _malloc_trim()) is not None:
        trim(0)


def release_when_gone(holder: object) -> None:
    """Trim the heap when ``holder`` (what kept the reply) is freed: by then the call's copies of
    the reply (its Message, its JSON, the result) are freed too."""
    weakref.finalize(holder, _release)
