"""The nodes the watch remembers after the SuperLink stopped listing them.

A SuperLink with in-memory state (Flower's default, no ``--database``) forgets every node
when it restarts, and Flower 1.42 SuperNodes refused on their next heartbeat exit rather
than register again: the nodes vanish from ``ListNodes`` without anybody unregistering
them. Reporting only what ``ListNodes`` lists would drop their series, so a federation
left without a node would fire nothing.

:class:`NodeMemory` keeps every activated node the watch has listed (online or offline,
under its own ``client`` label: bounded by the labeler's cap). A remembered node that is
no longer listed is reported offline and *replaced* (its place is gone), which is the one
rule of FLNodeOffline for old node ids: it fires, and stops ``lifecycle.stale_after``
after the node's last heartbeat, when the watch forgets it. A node the SuperLink lists as
unregistered (the operator removed it) is forgotten at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from flmon.watch.aggregate import NodeRow, last_heartbeat
from flmon.watch.control import NodeView


@dataclass(frozen=True)
class _Remembered:
    row: NodeRow
    last_beat: float
    """SuperLink time of the node's last heartbeat (or of the poll that last listed it)."""


class NodeMemory:
    """Remembered nodes; not thread-safe (the watch state holds the lock).

    Parameters
    ----------
    stale_after
        Seconds after its last heartbeat a node no longer listed is forgotten.
    """

    def __init__(self, stale_after: float) -> None:
        if stale_after < 0:
            raise ValueError("stale_after must not be negative")
        self.stale_after = stale_after
        self._nodes: dict[int, _Remembered] = {}

    def __len__(self) -> int:
        return len(self._nodes)

    def merge(self, now: float, nodes: Sequence[NodeView], rows: Sequence[NodeRow],
              ) -> list[NodeRow]:
        """The rows of one poll followed by the remembered nodes it no longer lists.

        ``rows`` are the listed nodes' rows (activated nodes with a ``client`` label of
        their own); ``nodes`` everything ``ListNodes`` returned, ``now`` the SuperLink's
        clock at the poll.
        """
        listed = {node.node_id: node for node in nodes}
        for row in rows:
            beat = last_heartbeat(listed[row.node_id])
            self._nodes[row.node_id] = _Remembered(row, now if beat is None else beat)
        out = list(rows)
        listed_rows = {row.node_id for row in rows}
        for node_id, known in list(self._nodes.items()):
            if node_id in listed_rows:
                continue
            age = max(0.0, now - known.last_beat)
            if node_id in listed or age > self.stale_after:
                # listed but not activated (unregistered by the operator), or silent for
                # longer than stale_after: forgotten
                del self._nodes[node_id]
                continue
            out.append(replace(known.row, online=False, heartbeat_age=age, replaced=True))
        return out
