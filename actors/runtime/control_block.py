"""The node's control block: one cache line per core saying which incarnation of it runs.

Concern: a tiny shared-memory table the supervisor writes and every core reads, so a core learns
that a peer died or restarted (and which rings to attach) without any other channel.

    per core (64 bytes): generation, state, pid  (written by the supervisor)
                         ready                   (written by the core: its generation, once set up)

Must not know about rings, actors or loops.
"""

from __future__ import annotations

import enum
import mmap

import posix_ipc

__all__ = ["ControlBlock", "CoreState"]

_LINE_WORDS = 8  # 64 bytes per core
_GEN, _STATE, _PID, _READY = 0, 1, 2, 3


class CoreState(enum.IntEnum):
    ABSENT = 0
    RUNNING = 1
    DEAD = 2
    STOPPING = 3


class ControlBlock:
    def __init__(
        self, name: str, ncores: int, *, create: bool = False, read_only: bool = False
    ) -> None:
        size = ncores * _LINE_WORDS * 8
        if create:
            shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, size=size)
        else:
            shm = posix_ipc.SharedMemory(name, read_only=read_only)
        try:
            prot = mmap.PROT_READ if read_only else mmap.PROT_READ | mmap.PROT_WRITE
            self._mm = mmap.mmap(shm.fd, size, prot=prot)
        finally:
            shm.close_fd()
        self.name = name
        self.ncores = ncores
        self._words = memoryview(self._mm).cast("Q")

    def generation(self, core: int) -> int:
        return int(self._words[core * _LINE_WORDS + _GEN])

    def state(self, core: int) -> CoreState:
        return CoreState(int(self._words[core * _LINE_WORDS + _STATE]))

    def pid(self, core: int) -> int:
        return int(self._words[core * _LINE_WORDS + _PID])

    def ready(self, core: int) -> bool:
        base = core * _LINE_WORDS
        gen = int(self._words[base + _GEN])
        return gen != 0 and int(self._words[base + _READY]) == gen

    def set_core(self, core: int, generation: int, state: CoreState, pid: int) -> None:
        base = core * _LINE_WORDS
        self._words[base + _PID] = pid
        self._words[base + _STATE] = int(state)
        self._words[base + _GEN] = generation

    def set_state(self, core: int, state: CoreState) -> None:
        self._words[core * _LINE_WORDS + _STATE] = int(state)

    def set_pid(self, core: int, pid: int) -> None:
        self._words[core * _LINE_WORDS + _PID] = pid

    def mark_ready(self, core: int, generation: int) -> None:
        self._words[core * _LINE_WORDS + _READY] = generation

    def close(self) -> None:
        self._words.release()
        self._mm.close()
