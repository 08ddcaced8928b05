"""glibc malloc settings for PyTorch on the CPU: keep large tensor buffers mapped between training steps.

By default glibc serves every allocation above ~128 KB-32 MB with a fresh mmap and returns freed memory to the
system, so each step maps, page-faults and unmaps its activations again (issue 18 measured a third of the CPU time
in page faults). Raising the mmap and trim thresholds keeps the buffers in the heap for reuse. Called first by
every console command (``synth.commands.runner.run_cli``); ``SYNTH_MALLOC=system`` leaves malloc as it is; a
no-op on non-glibc systems.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

#: mallopt parameter numbers from glibc's malloc.h
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
#: (parameter, value): never mmap below 2 GiB, trim only above 1 GiB free at the top, grow the heap by 256 MiB
SETTINGS = ((M_MMAP_THRESHOLD, 2**31 - 1), (M_TRIM_THRESHOLD, 2**30), (M_TOP_PAD, 2**28))
ENV = "SYNTH_MALLOC"


def tune_malloc() -> str:
    """Apply ``SETTINGS`` through mallopt; returns what was done: 'tuned', 'system' (turned off) or 'unsupported'."""
    if os.environ.get(ENV, "tuned").lower() == "system":
        return "system"
    if platform.libc_ver()[0] != "glibc":
        return "unsupported"
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    ok = all(libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) == 1 for param, value in SETTINGS)
    return "tuned" if ok else "unsupported"
