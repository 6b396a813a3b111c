"""What ComfyUI's server sends to the browser during a prompt, captured at the host's own message functions.

``ui_server(client_id)`` installs a stand-in as ``server.PromptServer.instance`` (and ComfyUI's temp folder in
a temporary directory, so nothing is written into the checkout). The stand-in's ``send_progress_text`` is the
host's own ``PromptServer.send_progress_text`` (bound to the stand-in: it packs the message exactly as ComfyUI
does); only ``send_sync``, the point where the real server queues a message for the websocket, records instead.
Pass the stand-in to ``comfy_prompt.run_graph(..., server=ui, client_id=ui.client_id)`` so the executor's own
messages ("executing", "executed", ...) land in the same list.
"""
from __future__ import annotations

import contextlib
import struct
import tempfile
from typing import Iterator, NamedTuple

import comfy_host


class Text(NamedTuple):
    text: str
    sid: str | None  # the client it was sent to (None: every client)
    index: int  # its place among all messages sent


class RecordingServer:
    """PromptServer as the executor and the pack use it: every message recorded as (event, data, sid)."""

    def __init__(self, client_id: str | None) -> None:
        self.client_id = client_id
        self.last_node_id = None
        self.sent: list[tuple[object, object, str | None]] = []

    @property
    def messages(self) -> list[tuple[object, object]]:  # what comfy_prompt.GraphRun reads
        return [(event, data) for event, data, _ in self.sent]

    def send_sync(self, event, data, sid=None) -> None:
        self.sent.append((event, data, sid))

    def send_progress_text(self, text, node_id, sid=None):
        import server

        return server.PromptServer.send_progress_text(self, text, node_id, sid)  # the host's own packing

    def queue_updated(self) -> None:
        pass

    def texts(self, node_id: str) -> list[Text]:
        """Every progress-text message for ``node_id``, unpacked the way the frontend reads them."""
        from protocol import BinaryEventTypes

        out = []
        for index, (event, data, sid) in enumerate(self.sent):
            if event == BinaryEventTypes.TEXT:
                (length,) = struct.unpack(">I", bytes(data[:4]))
                node = bytes(data[4:4 + length]).decode("utf-8")
                if node == node_id:
                    out.append(Text(bytes(data[4 + length:]).decode("utf-8"), sid, index))
        return out

    def executing_at(self, index: int) -> str | None:
        """The node the host had last said was executing when message ``index`` was sent."""
        nodes = [data.get("node") for event, data, _ in self.sent[:index] if event == "executing"]
        return nodes[-1] if nodes else None

    def executed(self, node_id: str) -> list[tuple[dict, str | None]]:
        """(data, sid) of every "executed" message for ``node_id``."""
        return [(data, sid) for event, data, sid in self.sent if event == "executed" and data.get("node") == node_id]


@contextlib.contextmanager
def ui_server(client_id: str | None = "test-client") -> Iterator[RecordingServer]:
    comfy_host.bootstrap()
    import folder_paths
    import server

    stand_in = RecordingServer(client_id)
    had = "instance" in server.PromptServer.__dict__
    saved_instance = server.PromptServer.__dict__.get("instance")
    saved_temp = folder_paths.get_temp_directory()
    with tempfile.TemporaryDirectory(prefix="l2p-ui-temp-") as temp:
        server.PromptServer.instance = stand_in
        folder_paths.set_temp_directory(temp)
        try:
            yield stand_in
        finally:
            folder_paths.set_temp_directory(saved_temp)
            if had:
                server.PromptServer.instance = saved_instance
            else:
                del server.PromptServer.instance
