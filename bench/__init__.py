"""The load tool (``chatguard bench``): workloads that measure signaling, the relay route and
the strict route. The product never imports this package; ``chatguard bench`` loads the one
workload asked for through :mod:`bench.registry` (see :mod:`bench.workload` for their shape)."""
