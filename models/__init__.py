"""Moderation models: manifests, loading, inference and output decoding.

One job per module, imported explicitly (this package root imports nothing, so
``models.manifest`` can be used for config validation without pulling in
onnxruntime):

* :mod:`models.manifest` -- TOML model manifests, validated with msgspec;
* :mod:`models.letterbox` -- frame <-> square network input geometry;
* :mod:`models.detections` -- vectorised YOLOv8 / classifier output decoding;
* :mod:`models.inference` -- :class:`~models.inference.ModelRunner` (onnxruntime);
* :mod:`models.batching` -- :class:`~models.batching.AsyncBatcher` for asyncio;
* :mod:`models.preprocess_reference` -- numpy/cv2 reference preprocessing
  (tests/benchmarks only; production uses the Cython YUV fast path).

The default model is NudeNet 320n, whose weights ship in the ``nudenet``
package and are licensed **AGPL-3.0** (chatguard's own code is MIT).
"""
