"""Scale-out: many signaling processes (nodes) sharing one pool of strangers in Redis.

Used only when ``[cluster] redis_url`` is set; without it nothing here is imported. The pool's
rules run inside Redis as one script (``pool.lua``, spoken to through ``signaling.cluster.pool``);
``signaling.cluster.node`` is the node's side: a matchmaker the hub drives like the in-memory one,
and the asyncio bridge that carries its inputs to Redis and the pool's events, partners'
messages, other nodes' relay workers and their commands back; ``signaling.cluster.bans``
shares the strike counts and bans; ``signaling.cluster.foreign_legs`` says which node hosts the
call of a leg that this node's worker carries for another.
"""
