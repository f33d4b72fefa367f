"""Scheduler slices for a core's threads: the wake-up preference of an event loop on a busy CPU.

Concern: `set_thread_slice`, the calling thread's EEVDF slice (Linux 6.12+: `sched_setattr(2)`
with `sched_runtime` on a SCHED_OTHER thread; no privilege needed). A thread with a shorter slice
than the one running gets an earlier virtual deadline, so its wake-up preempts it: a core's loop
woken by a doorbell or a socket runs now instead of after a client thread's 3 ms slice. Each
cross-core hop of a request is two such wake-ups (the append there, its acknowledgement back),
so on CPUs shared with busy clients they bound how soon a produce is answered. Older kernels
ignore the field;
other platforms have no such call (False). Must not know: anything of the runtime above it.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

__all__ = ["DEFAULT_LOOP_SLICE_US", "set_thread_slice"]

# Off by default (0: the kernel's slices). 100 us slices were the default while `bench e2e`
# paced its producer with a spinning poll(0) loop that kept a CPU busy: then the 8-partition
# p50 passed 3.5 ms in 1 run of 10 without them, 10 with. With the bench's producer sleeping
# between sends (2026-12-07) they only cost: 3 interleaved runs each, 8 partitions, single node
# pinned: p50 1.63-1.78 ms without, 1.64-2.17 with; 1 partition: p99 2.2-2.4 against 2.9-3.6;
# a 3-node cluster on the same 2 CPUs (`--nodes 3`): 1 partition p50 5.7-6.8 against 8.0-9.4,
# 8 partitions (5 runs) median 14.3 against 21.8. Peak produce was also 5-15% lower with them
# (2 runs each). `--loop-slice-us` keeps them for CPUs shared with a client that spins.
DEFAULT_LOOP_SLICE_US = 0

_SYS_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274}.get(platform.machine())
_SCHED_OTHER = 0
_SCHED_BATCH = 3


class _SchedAttr(ctypes.Structure):
    # struct sched_attr (include/uapi/linux/sched/types.h), SCHED_ATTR_SIZE_VER1.
    _fields_ = [
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
        ("sched_util_min", ctypes.c_uint32),
        ("sched_util_max", ctypes.c_uint32),
    ]


def set_thread_slice(slice_us: int) -> bool:
    """Ask for `slice_us` microsecond slices for the calling thread (the kernel clamps to
    100 us..100 ms); 0 restores the default. Keeps the thread's policy and nice value; a thread
    under a real-time or idle policy is left alone. Threads created afterwards inherit it.
    False where the call is unavailable or refused."""
    if not sys.platform.startswith("linux") or _SYS_SCHED_SETATTR is None:
        return False
    policy = os.sched_getscheduler(0)
    if policy not in (_SCHED_OTHER, _SCHED_BATCH):
        return False
    nice = os.getpriority(os.PRIO_PROCESS, 0)  # of this thread (Linux: per thread)
    attr = _SchedAttr(size=ctypes.sizeof(_SchedAttr), sched_policy=policy, sched_nice=nice,
                      sched_runtime=max(slice_us, 0) * 1000)
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.syscall(_SYS_SCHED_SETATTR, 0, ctypes.byref(attr), 0)) == 0
