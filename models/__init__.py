"""Moderation models: manifests, loading, inference and output decoding.

One job per module, imported explicitly (this package root imports nothing, so
``models.manifest`` can be used for config validation without pulling in
onnxruntime):

* :mod:`models.manifest` -- TOML model manifests, validated with msgspec;
* :mod:`models.letterbox` -- frame <-> square network input geometry;
* :mod:`models.detections` -- vectorised YOLOv8 / classifier output decoding;
* :mod:`models.inference` -- :class:`~models.inference.Runner` and
  :class:`~models.inference.ModelRunner` (onnxruntime, fp32);
* :mod:`models.openvino_runner` -- :class:`~models.openvino_runner.OpenVinoRunner` (bf16 or
  fp32; the optional ``openvino`` extra);
* :mod:`models.runtime` -- :func:`~models.runtime.open_runner`: the manifest's engine and
  precision on this machine;
* :mod:`models.recheck` -- which bf16 results are recomputed in fp32 at given thresholds;
* :mod:`models.batching` -- :class:`~models.batching.AsyncBatcher` for asyncio;
* :mod:`models.preprocess_reference` -- numpy/cv2 reference preprocessing
  (tests/benchmarks only; production uses the Cython YUV fast path).

The default model is NudeNet 320n, whose weights ship in the ``nudenet``
package and are licensed **AGPL-3.0** (chatguard's own code is MIT).
"""
