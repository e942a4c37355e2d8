"""The strict route: inline moderation of relayed video.

Imported only by workers that moderate: ``moderation`` (I/O: decode thread, model) drives the
sans-I/O ``depacketize`` (RTP to whole frames), ``gate`` (which frames a safe verdict covers)
and ``block_policy`` (which detections make a frame unsafe). A worker that only forwards never
loads this package, and with it neither onnxruntime, the model nor the Cython frame code.
"""
