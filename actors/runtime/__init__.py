"""The per-core runtime: loop-hosted pykka actors, core processes and their supervisor,
shared-memory SPSC mailboxes, remote references. Imports no other project code."""

from .control_block import ControlBlock, CoreState
from .core_process import CoreContext, CoreSetup, CoreSpec, new_event_loop
from .envelope import (
    EnvelopeError,
    UndecodableMessageError,
    UnpicklableMessageError,
    register_codec,
)
from .hosted_core import HostedCore
from .log_setup import configure_logging
from .loop_actor import ActorProbe, LoopActor, ThreadActor, use_loop
from .loop_future import LoopBlockingError, LoopFuture, bind_loop, current_loop
from .mailbox import RingTransport
from .node_dir import NodeBusyError, NodeDir
from .node_stats import CoreBlock, NodeNotRunningError, read_core_blocks, read_node_stats
from .ring import RingConsumer, RingCorruptError, RingProducer, RingSegment
from .router import (
    CoreDiedError,
    CoreRouter,
    LocalRef,
    RemoteError,
    RemoteRef,
    Staged,
    Transport,
)
from .sched import DEFAULT_LOOP_SLICE_US, set_thread_slice
from .sim_loop import SimCores, SimulationStalledError, VirtualClockLoop
from .stats_block import COUNTER_WORDS, has_stats_block, process_counters, publish_tables
from .supervisor import Supervisor

__all__ = [
    "COUNTER_WORDS",
    "DEFAULT_LOOP_SLICE_US",
    "ActorProbe",
    "ControlBlock",
    "CoreBlock",
    "CoreContext",
    "CoreDiedError",
    "CoreRouter",
    "CoreSetup",
    "CoreSpec",
    "CoreState",
    "EnvelopeError",
    "HostedCore",
    "LocalRef",
    "LoopActor",
    "LoopBlockingError",
    "LoopFuture",
    "NodeBusyError",
    "NodeDir",
    "NodeNotRunningError",
    "RemoteError",
    "RemoteRef",
    "RingConsumer",
    "RingCorruptError",
    "RingProducer",
    "RingSegment",
    "RingTransport",
    "SimCores",
    "SimulationStalledError",
    "Staged",
    "Supervisor",
    "ThreadActor",
    "Transport",
    "UndecodableMessageError",
    "UnpicklableMessageError",
    "VirtualClockLoop",
    "bind_loop",
    "configure_logging",
    "current_loop",
    "has_stats_block",
    "new_event_loop",
    "process_counters",
    "publish_tables",
    "read_core_blocks",
    "read_node_stats",
    "register_codec",
    "set_thread_slice",
    "use_loop",
]
