"""Scale-out: many signaling processes (nodes) sharing one pool of strangers in Redis.

Used only when ``[cluster] redis_url`` is set; without it nothing here is imported. The pool's
rules run inside Redis as one script (``pool.lua``, spoken to through ``signaling.cluster.pool``);
``signaling.cluster.node`` is the node's side: a matchmaker the hub drives like the in-memory one,
and the asyncio bridge that carries its inputs to Redis and the pool's events and partners'
messages back; ``signaling.cluster.bans`` shares the bans a node makes with the others.
"""
