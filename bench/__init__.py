"""Benchmarks that measure signaling, relay throughput and moderation latency."""
