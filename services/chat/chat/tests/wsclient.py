"""A thin WebsocketCommunicator wrapper speaking the chat protocol, for consumer tests."""

import json
from urllib.parse import quote

from channels.testing import WebsocketCommunicator

from chatsite.asgi import application


def path_for(room, query=""):
    return f"/ws/chat/{quote(room, safe='')}/" + (f"?{query}" if query else "")


class Client:
    def __init__(
        self, room, query="", origin="http://localhost", path=None, host="localhost", client=None
    ):
        headers = [(b"host", host.encode())] if host else []
        if origin:
            headers.append((b"origin", origin.encode()))
        self.comm = WebsocketCommunicator(application, path or path_for(room, query), headers)
        if client is not None:  # the (address, port) Daphne puts in the scope
            self.comm.scope["client"] = client

    async def __aenter__(self):
        self.connected, self.subprotocol = await self.comm.connect(timeout=5)
        return self

    async def __aexit__(self, *exc):
        await self.comm.disconnect()

    async def send(self, message):
        await self.comm.send_to(text_data=json.dumps({"message": message}))

    async def send_raw(self, text=None, binary=None):
        await self.comm.send_to(text_data=text, bytes_data=binary)

    async def recv(self, timeout=3):
        return json.loads(await self.comm.receive_from(timeout))

    async def recv_many(self, n, timeout=3):
        return [await self.recv(timeout) for _ in range(n)]

    async def nothing(self, timeout=0.2):
        return await self.comm.receive_nothing(timeout)

    async def closed(self, timeout=3):
        """The close that ends the socket: (code, the close frame's detail)."""
        detail = None
        while True:
            output = await self.comm.receive_output(timeout)
            if output["type"] == "websocket.close":
                return output.get("code"), detail
            if output["type"] == "websocket.send" and output.get("text"):
                frame = json.loads(output["text"])
                if frame.get("type") == "close":
                    detail = frame["detail"]
