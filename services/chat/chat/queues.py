"""A per-connection queue that costs nothing while empty (an idle socket's queues are empty)."""

import asyncio
import collections


class LeanQueue:
    """asyncio.Queue's put_nowait() and get() for one reader, without its idle deques and Event.

    asyncio.Queue carries three deques and an Event with a fourth, ~760 bytes each even when
    empty; each idle WebSocket holds two queues (Daphne's input, the channel layer's) for its
    whole life: ~6 KB of 37 per socket (docs/PERFORMANCE.md, "What was tuned"). Items wait in a
    deque only while there are any. A waiting get() is woken and then takes the item, so a get()
    cancelled after its wake-up loses nothing, as in asyncio.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self):
        self._items = None
        self._waiter = None

    def qsize(self):
        return len(self._items) if self._items else 0

    def empty(self):
        return not self._items

    def put_nowait(self, item):
        if self._items is None:
            self._items = collections.deque()
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self):
        while not self._items:
            if self._waiter is not None and not self._waiter.done():
                raise RuntimeError("LeanQueue has one reader")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if not self._items:
            self._items = None
        return item
