"""Relay: terminates WebRTC with both members of a relayed pair and forwards their media.

Media is forwarded at RTP level and is never re-encoded (on the strict route the relay
decodes a copy of moderated video to classify it). Read in this order:
``aiortc_adapter`` (where a packet enters and leaves: the only module touching aiortc
internals), ``hub`` (which leg and stream it belongs to; RTCP answered locally), ``forwarder``
(the per-packet decision). The rest is sans-I/O helpers with the clock passed in: ``rtp``,
``rtcp``, ``codecs``, ``rewriter``, ``keyframes``, ``retransmit``, ``stats``,
``negotiation``. Strict route (inline moderation): ``moderation`` (I/O) drives ``depacketize``,
``gate`` and ``policy`` (sans-I/O). See ``docs/relay-design.md``.
"""
