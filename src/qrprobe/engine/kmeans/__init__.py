"""The K-means wing: quantization of standardized features (paper App. C).

- ``quantize``: :class:`KMeans` (a scikit-learn clusterer with the protocol's K-means parameters,
  :class:`~qrprobe.engine.config.KMeansConfig`) and :func:`fit_clusterings` (standardize once, one clustering per
  seed: the protocol's quantization); ``validation``: its input checks;
- ``result``: :class:`KMeansResult`, one clustering as every path returns it;
- ``standardize``: :class:`Standardizer` and the streamed standardized copy in the storage precision;
- ``lloyd``: plain float32 Lloyd (``kmeans_precision="float32"``) and the initialisations;
- ``exact`` (:class:`~.exact.BoundedLloyd`), ``bounds``, ``sums``, ``exact_fit``, ``stored``: exact Lloyd on
  16-bit stored values with Yinyang bounds, its restarts, and what the clusterings of one data set share;
- ``engines``: the distance engines of exact Lloyd and their registry (each says where it can run and what it
  guarantees; ``docs/CONTRIBUTING.md`` says how to add one), ``kernel`` (+ ``_kernels/*.c``): the compiled
  AVX-512 BF16 kernel;
- ``memo``: inside a study run, a clustering already computed is reused;
- ``faiss_backend``: ``kmeans_backend="faiss"``;
- ``distributed``: K-means over rows sharded across processes (``torch.distributed``).
"""

from .quantize import BACKENDS, INITS, KMeans, fit_clusterings
from .result import KMeansResult
from .standardize import PRECISIONS, Standardizer, apply_standardization, check_finite

__all__ = ["BACKENDS", "INITS", "PRECISIONS", "KMeans", "KMeansResult", "Standardizer", "apply_standardization",
           "check_finite", "fit_clusterings"]
