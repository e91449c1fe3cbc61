"""The statistics wing: what a score means (docs/statistics.md).

- ``bootstrap``: Poisson bootstrap weights shared by every result on the same images, replicate metrics;
- ``uncertainty``: intervals of a mean over clusterings, paired differences, Holm's correction;
- ``chance``: the permutation null (the same protocol on shuffled concepts), baselines without a probe,
  small-sample warnings;
- ``result_statistics``: :func:`result_statistics`, everything above as the fields ``evaluate`` adds to a Result.
"""

from .result_statistics import Statistics, result_statistics

__all__ = ["Statistics", "result_statistics"]
