"""``ReverseProbing``: the protocol as a scikit-learn estimator (``get_params``, ``set_params``, ``clone``).

Its constructor takes exactly the flat protocol parameters of :mod:`qrprobe.engine.config` (protocol and probe
fields, same names and defaults) plus ``progress``, and stores them as given: its signature is made from the
schema (:func:`~qrprobe.engine.config.flat_defaults`), so a new protocol parameter is a new estimator parameter.
"""

from __future__ import annotations

import difflib
import inspect
import os
import typing
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_array, check_consistent_length, check_is_fitted, validate_data

from ..concepts.bank import ConceptBank
from ..errors import QRProbeInputError
from ..features.store import FeatureStore
from ..metrics import normalized_mutual_info
from ..results import Result
from ..schema import set_signature
from .config import KMeansConfig, ProbeConfig, ProtocolConfig, flat_defaults
from .evaluate import ConceptsLike, evaluate
from .inputs import Features

_FEATURE_DTYPES = [np.float64, np.float32]  # kept as given; integers and float16 become float64
_BLOCK_BYTES = 64 * 2**20  # distances (rows × K float64) computed at once


class ReverseProbing(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Quantized reverse probing as a scikit-learn estimator: ``ReverseProbing(k=1000, clusterings=5).fit(X, y)``.

    ``fit(X, y)`` runs the whole protocol (:func:`~qrprobe.engine.evaluate.evaluate`): standardize and cluster
    the features ``X`` with K-means, ``clusterings`` times, and train a linear probe per clustering that
    predicts an image's cluster from its concepts ``y``. Once fitted, new images can be placed in the clusters
    (:meth:`predict`, :meth:`transform`) and the probes scored on them (:meth:`score`), so that
    ``cross_val_score`` and ``GridSearchCV`` work (the score is the probes' NMI on held-out images).

    Parameters
    ----------
    k, clusterings, seed, … : every field of :class:`~qrprobe.engine.config.ProtocolConfig` (the protocol) and
        :class:`~qrprobe.engine.config.ProbeConfig` (the probe's schedule: ``lr``, ``epochs`` …), flat, with
        their names and defaults (``inspect.signature(ReverseProbing)`` lists them).
    progress : progress bars and notes on stderr (default: silent; warnings go to the ``qrprobe`` logger).

    Attributes
    ----------
    result_ : :class:`~qrprobe.results.Result` of the fit; summary_ : ``result_.summary``; config_ : the
    ProtocolConfig used; n_features_in_ : D; n_concepts_in_ : M, the concept columns the probes read;
    cluster_centers_ : (K, D) float64 centroids of the first clustering, in the standardized space.

    Examples
    --------
    >>> from sklearn.base import clone
    >>> est = ReverseProbing(k=50, clusterings=3)
    >>> clone(est).set_params(k=100).get_params()["k"]
    100
    """

    def __init__(self, **params: Any) -> None:  # its signature: _signature() below
        defaults = {**flat_defaults(), "progress": False}
        for name in params:
            if name not in defaults:
                close = difflib.get_close_matches(name, list(defaults), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise TypeError(f"ReverseProbing() got an unexpected keyword argument {name!r}{hint}")
        for name, default in defaults.items():
            setattr(self, name, params.get(name, default))

    def protocol(self) -> ProtocolConfig:
        """The :class:`ProtocolConfig` of the current parameters (checked)."""
        params: dict[str, Any] = self.get_params()
        params.pop("progress")
        return ProtocolConfig.from_params(**params)

    # ------------------------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any, name: str = "") -> ReverseProbing:
        """Quantize the features ``X`` and probe the clusters from the concepts ``y``.

        Parameters
        ----------
        X : (N, D) real features: an array-like (checked with scikit-learn's ``validate_data``: 2-d, at least
            2 rows, finite, real; sparse refused), or a :class:`~qrprobe.features.store.FeatureStore` or the
            path of a store or ``.npy`` file (read as :func:`~qrprobe.evaluate` reads them).
        y : the concepts of the N images: a (N, M) 0/1 matrix (dense or scipy sparse), a (N,) vector of class
            labels (one concept per class, as the ``labels`` expert makes), a
            :class:`~qrprobe.concepts.bank.ConceptBank` or the path of one (rows matched by image id to a
            feature store's).
        name : the representation's label in tables (default: from the features' model).
        """
        self.config_ = self.protocol()
        features: Any
        if isinstance(X, (str, os.PathLike, FeatureStore, Features)):
            features = X
            if isinstance(y, (ConceptBank, str, os.PathLike)):
                concepts: ConceptsLike = y
            else:
                concepts = self._concepts(y, reset=True)
        else:
            features = validate_data(self, X, reset=True, accept_sparse=False, dtype=_FEATURE_DTYPES,
                                     ensure_min_samples=2)
            if isinstance(y, (str, os.PathLike)):
                raise QRProbeInputError("y: a concept-bank path needs features with image ids (a feature store "
                                        "or its path) to match rows by; give y as a (N, M) matrix or a "
                                        "ConceptBank for an array X")
            concepts = self._concepts(y, reset=True)
            check_consistent_length(features, concepts.matrix)
        self.result_: Result = evaluate(features, concepts, self.config_, name=name, progress=self.progress)
        self.summary_ = self.result_.summary
        self._check_fitted_arrays()
        self.n_features_in_ = int(self.result_.centroids.shape[2])  # type: ignore[union-attr]
        self.n_concepts_in_ = int(self.result_.coef.shape[1])  # type: ignore[union-attr]
        self.cluster_centers_ = np.asarray(self.result_.centroids[0], dtype=np.float64)  # type: ignore[index]
        return self

    def _concepts(self, y: Any, *, reset: bool) -> ConceptBank:
        """``y`` (dense or sparse 0/1 matrix, or 1-d class labels) as a ConceptBank, checked with scikit-learn's
        ``check_array`` (finite, numeric, non-empty); at ``fit`` (``reset``) the class labels are recorded."""
        if isinstance(y, ConceptBank):
            matrix: Any = y.matrix
        elif y is None:
            raise QRProbeInputError("y: ReverseProbing requires y to be passed, but the target y is None; give the "
                                    "concepts of the images (a (N, M) 0/1 matrix, (N,) class labels or a "
                                    "ConceptBank): reverse probing predicts clusters from them")
        else:
            matrix = check_array(y, accept_sparse="csr", ensure_2d=False, dtype=None, input_name="y")
        if not sp.issparse(matrix) and matrix.ndim == 1:
            labels = matrix
            if labels.dtype.kind not in "biuUSO":
                if labels.dtype.kind != "f" or not np.all(np.isfinite(labels)):
                    raise QRProbeInputError(f"y: expected class labels, got dtype {labels.dtype}")
                if np.any(labels != np.round(labels)):
                    raise QRProbeInputError("y: a 1-d y holds class labels; got non-integer values (give "
                                            "concepts as a (N, M) 0/1 matrix)")
            if reset:
                self.classes_: np.ndarray | None = np.unique(labels)
            elif getattr(self, "classes_", None) is None:
                raise QRProbeInputError("y: fitted with a concept matrix, got 1-d class labels")
            classes = np.asarray(self.classes_)
            columns = np.searchsorted(classes, labels).clip(0, len(classes) - 1)
            known = (classes[columns] == labels).astype(np.uint8)  # an unseen class: a row without concepts
            matrix = sp.csr_matrix((known, (np.arange(len(labels)), columns)), shape=(len(labels), len(classes)))
            names = [f"class {c}" for c in classes]
        else:
            if matrix.ndim != 2:
                raise QRProbeInputError(f"y: expected a (N, M) concept matrix or (N,) class labels, got "
                                        f"{matrix.ndim} dimensions")
            if matrix.dtype.kind not in "biuf":
                raise QRProbeInputError(f"y: expected a numeric 0/1 concept matrix, got dtype {matrix.dtype}")
            if reset:
                self.classes_ = None
            names = [f"concept {j}" for j in range(matrix.shape[1])]
        if isinstance(y, ConceptBank):
            return y
        return ConceptBank.from_matrix(matrix, names)

    def _check_fitted_arrays(self) -> None:
        res = self.result_
        if res.centroids is None or res.coef is None or res.bias is None or res.standardizer is None:
            raise QRProbeInputError("the fitted result keeps no centroids or probe weights (keep_arrays)")

    # ------------------------------------------------------------------------------------ fitted
    def _standardized(self, X: Any) -> np.ndarray:
        """``X`` (n, D) checked against ``fit`` and standardized as the training features were (float64)."""
        check_is_fitted(self, "result_")
        X = validate_data(self, X, reset=False, accept_sparse=False, dtype=_FEATURE_DTYPES)
        std = self.result_.standardizer or {}
        scale = np.asarray(std["scale"], dtype=np.float64)
        safe = np.where(scale > 0, scale, 1.0)
        return np.where(scale > 0, (np.asarray(X, np.float64) - np.asarray(std["mean"], np.float64)) / safe, 0.0)

    def _sq_distances(self, z: np.ndarray, clustering: int) -> np.ndarray:
        """(n, K) float64 squared distances of standardized rows ``z`` to the centroids of ``clustering``."""
        c = np.asarray(self.result_.centroids[clustering], dtype=np.float64)  # type: ignore[index]
        out = np.empty((len(z), len(c)))
        step = max(1, _BLOCK_BYTES // (8 * max(len(c), z.shape[1])))
        csq = (c * c).sum(1)
        for start in range(0, len(z), step):
            x = z[start:start + step]
            out[start:start + step] = np.maximum((x * x).sum(1, keepdims=True) - 2 * x @ c.T + csq, 0.0)
        return out

    def predict_all(self, X: Any) -> np.ndarray:
        """(R, n) int64: the cluster of each new image in each of the R clusterings (nearest centroid of the
        standardized features, in float64)."""
        z = self._standardized(X)
        return np.stack([self._sq_distances(z, r).argmin(1) for r in range(len(self.result_.seeds))])

    def predict(self, X: Any) -> np.ndarray:
        """(n,) int64: the cluster of each new image in the first clustering (seed ``seed``): the nearest
        centroid of its standardized features. On the training features this is ``result_.clusterings[0]``
        up to ties (and up to the rounding of 16-bit K-means storage, ``kmeans_precision``)."""
        return self._sq_distances(self._standardized(X), 0).argmin(1)

    def transform(self, X: Any) -> np.ndarray:
        """(n, K) float64: Euclidean distances of each new image's standardized features to the K centroids of
        the first clustering (as scikit-learn's ``KMeans.transform``)."""
        return np.sqrt(self._sq_distances(self._standardized(X), 0))

    def predict_clusters_from_concepts(self, y: Any) -> np.ndarray:
        """(R, n) int64: each clustering's probe's prediction of the cluster of each image from its concepts
        ``y`` (as at ``fit``: matrix, class labels or ConceptBank, M columns)."""
        check_is_fitted(self, "result_")
        matrix = self._concepts(y, reset=False).matrix.astype(np.float32)
        if matrix.shape[1] != self.n_concepts_in_:
            raise QRProbeInputError(f"y has {matrix.shape[1]} concepts, but ReverseProbing was fitted with "
                                    f"{self.n_concepts_in_}")
        coef, bias = self.result_.coef, self.result_.bias
        return np.stack([np.asarray(matrix @ np.asarray(coef[r], np.float32)  # type: ignore[index]
                                    + np.asarray(bias[r], np.float32)).argmax(1)  # type: ignore[index]
                         for r in range(len(self.result_.seeds))])

    def score(self, X: Any, y: Any, sample_weight: None = None) -> float:
        """The reverse-probe score of held-out images: NMI ×100 (arithmetic normalisation, as the paper's)
        between the clusters of the images' features ``X`` (nearest centroids, :meth:`predict_all`) and the
        clusters that the fitted probes predict from their concepts ``y``, averaged over the R clusterings.

        Higher is better: 100 when the concepts name every image's cluster, about 0 when they say nothing
        about it. It is the protocol's test-split NMI for images the probes and K-means never saw; unlike
        ``result_.summary["nmi"]`` it does not re-cluster, so it scores the fitted model, as scikit-learn's
        ``score`` must. ``sample_weight`` is not supported (None only).
        """
        if sample_weight is not None:
            raise QRProbeInputError("sample_weight: not supported by ReverseProbing.score")
        clusters = self.predict_all(X)
        predicted = self.predict_clusters_from_concepts(y)
        if clusters.shape[1] != predicted.shape[1]:
            check_consistent_length(clusters[0], predicted[0])
        return float(np.mean([100 * normalized_mutual_info(c, p) for c, p in zip(clusters, predicted,
                                                                                strict=True)]))

    @property
    def _n_features_out(self) -> int:
        """Columns of :meth:`transform`: one per cluster (names ``reverseprobing0`` …)."""
        return int(self.result_.centroids.shape[1])  # type: ignore[union-attr]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.transformer_tags.preserves_dtype = []  # transform returns float64 distances whatever X's dtype
        tags.non_deterministic = False
        return tags


def _signature() -> inspect.Signature:
    """``(self, *, k=1000, …, lr=3.5, …, progress=False)``: what scikit-learn's ``get_params`` and ``clone`` read."""
    hints = {**typing.get_type_hints(KMeansConfig), **typing.get_type_hints(ProtocolConfig),
             **typing.get_type_hints(ProbeConfig)}
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hints[name])
               for name, default in flat_defaults().items()]
    params.append(inspect.Parameter("progress", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=bool))
    return inspect.Signature(params, return_annotation=None)


set_signature(ReverseProbing.__init__, _signature())

__all__ = ["ReverseProbing"]
