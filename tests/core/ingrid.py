"""An in-process Grid: delivers each message to a real ``ClientApp`` in this process.

Unit tests of the strategy wrapper use it to drive Flower's own ``Strategy.start`` loop,
real ``ClientApp`` objects and mods without network processes; the transport itself is
covered by the integration tests that start SuperLink and SuperNodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode
from flwr.server.superlink.linkstate.utils import create_message_error_unavailable_res_message
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity


class _Run:
    run_id = 4242


class InProcessGrid(Grid):
    """Nodes are ``ClientApp`` objects keyed by node id; ``None`` means the node is down."""

    def __init__(self, apps: Mapping[int, ClientApp | None],
                 node_config: Mapping[int, Mapping[str, int | float | str | bool]] | None = None,
                 ) -> None:
        # What a ServerApp process has set when Flower runs it.
        TaskIdentity.run_id = 4242
        TaskIdentity.task_id = 1
        TaskIdentity.node_id = 0
        self.apps = dict(apps)
        self.node_config = {k: dict(v) for k, v in (node_config or {}).items()}
        self.contexts: dict[int, Context] = {}

    def set_run(self, run: object) -> None:  # type: ignore[override]
        pass

    @property
    def run(self) -> _Run:  # type: ignore[override]
        return _Run()

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int,
                       group_id: str, ttl: float | None = None) -> Message:
        return Message(content=content, message_type=message_type, dst_node_id=dst_node_id,
                       group_id=group_id, ttl=ttl)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.apps)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        raise NotImplementedError

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        raise NotImplementedError

    def _context(self, node_id: int) -> Context:
        if node_id not in self.contexts:
            self.contexts[node_id] = Context(
                run_id=4242, node_id=node_id, node_config=self.node_config.get(node_id, {}),
                state=RecordDict(), run_config={})
        return self.contexts[node_id]

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterable[Message]:
        replies = []
        for msg in messages:
            # As the grid does when it pushes a message: its id is set in place.
            msg.metadata.__dict__["_message_id"] = msg.object_id
            node_id = msg.metadata.dst_node_id
            app = self.apps.get(node_id)
            if app is None:
                # The SuperLink's own reply for a node that is gone (src_node_id is the
                # SuperLink's id, not the node's), built by Flower's code.
                replies.append(create_message_error_unavailable_res_message(
                    msg.metadata, "node_unavail"))
                continue
            try:
                replies.append(app(msg, self._context(node_id)))
            except Exception as exc:  # noqa: BLE001 - as the SuperNode does
                replies.append(Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION,
                                             reason=str(exc)), reply_to=msg))
        return replies
