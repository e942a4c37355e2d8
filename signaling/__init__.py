"""Signaling: WebSocket pairing of strangers, SDP/ICE exchange within a pair, ICE servers and route policy."""
