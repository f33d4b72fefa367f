"""`redshank cluster ...`: the cluster as a whole.

    redshank cluster start N ...     start N nodes on this machine (argparse: tools/cluster_cmd.py)
    redshank cluster status ...      a node's view of the controller, from its data dir
"""

from __future__ import annotations

import click

from redshank.tools.cli import argparse_command

__all__ = ["cluster"]


@click.group("cluster", context_settings={"help_option_names": ["-h", "--help"]})
def cluster() -> None:
    """The cluster: info, health, configs, partitions, leadership; start N local nodes."""


cluster.add_command(argparse_command("start", "redshank.tools.cluster_cmd",
                                     "start N nodes on this machine (node ids 1..N)"))
cluster.add_command(argparse_command(
    "status", "redshank.tools.cluster_status",
    "a node's view of the controller (cluster uuid, leader, members), from its data dir"))
