"""Relay: terminates WebRTC with both members of a relayed pair and forwards their media.

Media is forwarded at RTP level and is never re-encoded (on the strict route the relay
decodes a copy of moderated video to classify it). Read in this order: ``aiortc_adapter``
(where a packet enters and leaves: the only module touching aiortc internals), ``legs`` (what
the hub needs of a leg: the interface ``aiortc_adapter`` implements), ``forwarding_hub`` (which
leg and stream a packet belongs to, one record per leg; RTCP answered locally), ``forwarder``
(the per-packet decision). The rest is sans-I/O helpers with the clock passed in: ``rtp``,
``rtcp``, ``codecs``, ``rewriter``, ``keyframes``, ``retransmit``, ``reception_stats``,
``negotiation``, ``leg_budget`` (what one leg may cost per second). The worker process:
``worker`` (I/O) carries out ``control`` (the protocol with signaling), admitting offers and
candidates through ``admission`` and running each leg's work in its ``lanes``. Strict
route (inline moderation), in ``strict/``, imported only once a leg is moderated:
``moderation`` (I/O) drives ``depacketize``, ``gate`` (a transition table) and
``block_policy`` (sans-I/O). See ``docs/relay-design.md``.
"""
