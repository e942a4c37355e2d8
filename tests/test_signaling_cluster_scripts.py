"""The node's scripts called by SHA1 alone, against a real redis-server that forgets them (as
a restarted or flushed one does): the calls that met NOSCRIPT run once more after the scripts
are loaded again, and nothing else in their batch runs twice."""

from __future__ import annotations

import redis.asyncio as aioredis

from signaling.cluster.scripts import Scripts
from tests.support.redis_server import RedisServer

SCRIPTS = Scripts(
    {"add": "return redis.call('INCRBY', KEYS[1], ARGV[1])", "echo": "return ARGV[1]"}
)


async def test_a_batch_whose_scripts_redis_forgot_runs_each_command_once(
    redis: RedisServer,
) -> None:
    async with aioredis.Redis.from_url(redis.url, decode_responses=True) as r:
        await SCRIPTS.load(r)
        assert await SCRIPTS.call(r, "echo", [], ["loaded"]) == "loaded"
        await r.script_flush()
        pipe = r.pipeline(transaction=False)
        calls: dict[int, tuple[str, list[str], list[str]]] = {}
        for at, (name, keys, args) in enumerate(
            [("add", ["n"], ["1"]), ("echo", [], ["x"]), ("add", ["n"], ["10"])]
        ):
            calls[2 * at] = (name, keys, args)
            SCRIPTS.queue(pipe, name, keys, args)
            pipe.incr("plain")  # not a script: runs the first time, and only then
        replies = await SCRIPTS.execute(r, pipe, calls)
        assert replies == [1, 1, "x", 2, 11, 3]
        assert await r.get("plain") == "3" and await r.get("n") == "11"
        await r.script_flush()
        assert await SCRIPTS.call(r, "add", ["n"], ["5"]) == 16  # a lone call loads them too
        info = await r.info("commandstats")
        assert "cmdstat_script|exists" not in info  # never asked: that was redis-py's way
