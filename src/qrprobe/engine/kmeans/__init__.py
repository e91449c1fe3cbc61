"""The K-means wing: quantization of standardized features (paper App. C).

- ``quantize``: :class:`KMeans` (parameters in ``__init__``, ``fit`` sets ``attr_``) and
  :func:`fit_clusterings` (standardize once, one clustering per seed: the protocol's quantization);
- ``result``: :class:`KMeansResult`, one clustering as every path returns it;
- ``standardize``: :class:`Standardizer` and the streamed standardized copy in the storage precision;
- ``lloyd``: plain float32 Lloyd (``kmeans_precision="float32"``) and the initialisations;
- ``exact`` (:class:`~.exact.BoundedLloyd`), ``bounds``, ``sums``, ``engines``, ``kernel`` (+ ``_kernels/*.c``),
  ``stored``: exact Lloyd on 16-bit stored values with Yinyang bounds over a distance engine, the compiled
  AVX-512 BF16 kernel, and what the clusterings of one data set share;
- ``memo``: inside a study run, a clustering already computed is reused;
- ``faiss_backend``: ``kmeans_backend="faiss"``;
- ``distributed``: K-means over rows sharded across processes (``torch.distributed``).
"""

from .quantize import BACKENDS, INITS, KMeans, fit_clusterings
from .result import KMeansResult
from .standardize import PRECISIONS, Standardizer, apply_standardization, check_finite

__all__ = ["BACKENDS", "INITS", "PRECISIONS", "KMeans", "KMeansResult", "Standardizer", "apply_standardization",
           "check_finite", "fit_clusterings"]
