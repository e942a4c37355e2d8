"""Relay: terminates WebRTC with both members of a relayed pair and forwards their media."""
