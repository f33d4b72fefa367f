"""The node identity file on disk: read it, and write it durably.

Concern: the IO around `cluster/node_identity.py`'s record at `<data>/cluster/node_identity.json`:
a write is temp file + fsync + rename + fsync of the directory, so a crash leaves the old record
or the new one, never a torn one (a node that forgot its incarnation would come back as a
stranger). Runs in the process that starts a node, before its cores, and in whatever later
assigns the cluster UUID. Must not know: what the fields mean (the sans-IO module decides).
"""

from __future__ import annotations

import contextlib
import os
import uuid

from redshank.cluster.controller.members_table import NetAddress
from redshank.cluster.node_identity import (
    IDENTITY_FILE,
    IdentityRefused,
    NodeIdentity,
    decode_identity,
    encode_identity,
    resolve_identity,
)

__all__ = ["identity_path", "load_identity", "settle_identity", "store_identity",
           "write_durably"]


def identity_path(data_dir: str) -> str:
    return os.path.join(data_dir, IDENTITY_FILE)


def load_identity(data_dir: str) -> NodeIdentity | None:
    """The stored identity, None if there is none; `IdentityFileError` if it is damaged."""
    try:
        with open(identity_path(data_dir), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    return decode_identity(data)


def store_identity(data_dir: str, identity: NodeIdentity) -> None:
    write_durably(identity_path(data_dir), encode_identity(identity))


def settle_identity(data_dir: str, node_id: int, seeds: tuple[NetAddress, ...]
                    ) -> NodeIdentity | IdentityRefused:
    """Read, decide, and store what changed: the identity this start runs as, or a refusal."""
    stored = load_identity(data_dir)
    result = resolve_identity(stored, node_id, seeds, uuid.uuid4())
    if isinstance(result, NodeIdentity) and result != stored:
        store_identity(data_dir, result)
    return result


def write_durably(path: str, data: bytes) -> None:
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
