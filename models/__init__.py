"""Moderation models: manifests, loading, inference and output decoding."""
