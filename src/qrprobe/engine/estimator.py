"""``ReverseProbing``: the protocol as a scikit-learn estimator (``get_params``, ``set_params``, ``clone``).

Its constructor takes exactly the flat protocol parameters of :mod:`qrprobe.engine.config` (protocol and probe
fields, same names and defaults) plus ``progress``, and stores them as given: its signature is made from the
schema (:func:`~qrprobe.engine.config.flat_defaults`), so a new protocol parameter is a new estimator parameter.
"""

from __future__ import annotations

import difflib
import inspect
import typing
from typing import Any

from sklearn.base import BaseEstimator

from ..results import Result
from ..schema import set_signature
from .config import KMeansConfig, ProbeConfig, ProtocolConfig, flat_defaults
from .evaluate import ConceptsLike, evaluate
from .protocol import FeaturesLike


class ReverseProbing(BaseEstimator):
    """Quantized reverse probing as an estimator: ``ReverseProbing(k=1000, clusterings=5).fit(X, concepts)``.

    Parameters
    ----------
    k, clusterings, seed, … : every field of :class:`~qrprobe.engine.config.ProtocolConfig` (the protocol) and
        :class:`~qrprobe.engine.config.ProbeConfig` (the probe's schedule: ``lr``, ``epochs`` …), flat, with
        their names and defaults (``inspect.signature(ReverseProbing)`` lists them).
    progress : progress bars on stderr.

    Attributes
    ----------
    result_ : :class:`~qrprobe.results.Result`; summary_ : ``result_.summary``; config_ : the ProtocolConfig used.

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

    def fit(self, X: FeaturesLike, concepts: ConceptsLike, name: str = "") -> ReverseProbing:
        """Quantize ``X`` (N, D) (array, store or path) and probe the clusters from ``concepts`` (N rows)."""
        self.config_ = self.protocol()
        self.result_: Result = evaluate(X, concepts, self.config_, name=name, progress=self.progress)
        self.summary_ = self.result_.summary
        return self

    def score(self, metric: str = "nmi") -> float:
        """Mean of ``metric`` over the clusterings of the fitted result (default NMI)."""
        return self.result_.mean(metric)


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
