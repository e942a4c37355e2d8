"""Signaling: pairs strangers over WebSockets, passes SDP/ICE within a pair, hands out ICE
servers, and decides each call's route (direct, relay, strict) from region policy."""
