"""The node's Lua scripts, called by their SHA1 alone (``EVALSHA``), loaded once.

Why not redis-py's ``Script`` objects: a pipeline holding one asks Redis ``SCRIPT EXISTS``
before every execution, an extra command and an extra round trip for each batch a node sends
(about one per client input). Here the scripts are loaded when the node starts and again only
when Redis answers ``NOSCRIPT``: a Redis that restarted (or was flushed) has forgotten them.
A pipeline's commands run whatever their neighbours' outcome, so the calls that met
``NOSCRIPT`` are sent again, in their order, once the scripts are back; everything else in
that batch ran the first time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any


class Scripts:
    """Named scripts for one Redis connection (``redis.asyncio``)."""

    def __init__(self, sources: dict[str, str]) -> None:
        self._sources = sources
        self._shas = {  # Redis names a script by its SHA1: an id, not a safeguard
            name: hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
            for name, text in sources.items()
        }

    async def load(self, redis: Any) -> None:
        pipe = redis.pipeline(transaction=False)
        for text in self._sources.values():
            pipe.script_load(text)
        await pipe.execute()

    def queue(self, pipe: Any, name: str, keys: Sequence[str], args: Sequence[str]) -> None:
        """Add one call to `pipe`; its reply is a ``NoScriptError`` if Redis lacks the script."""
        pipe.evalsha(self._shas[name], len(keys), *keys, *args)

    async def call(self, redis: Any, name: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        """One call on its own, loading the scripts first if Redis has lost them."""
        from redis.exceptions import NoScriptError

        try:
            return await redis.evalsha(self._shas[name], len(keys), *keys, *args)
        except NoScriptError:
            await self.load(redis)
            return await redis.evalsha(self._shas[name], len(keys), *keys, *args)

    async def execute(
        self, redis: Any, pipe: Any, calls: dict[int, tuple[str, list[str], list[str]]]
    ) -> list[Any]:
        """Execute `pipe` (errors as replies); `calls` (position -> name, keys, args) are its
        script calls, sent again where Redis had lost the scripts."""
        from redis.exceptions import NoScriptError

        replies: list[Any] = await pipe.execute(raise_on_error=False)
        lost = [at for at in calls if isinstance(replies[at], NoScriptError)]
        if lost:
            await self.load(redis)
            again = redis.pipeline(transaction=False)
            for at in lost:
                self.queue(again, *calls[at])
            for at, reply in zip(lost, await again.execute(raise_on_error=False), strict=True):
                replies[at] = reply
        return replies
