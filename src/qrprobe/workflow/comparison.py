"""The `compare` analysis: the ranked table, and how sure the ranking is.

The section itself is :func:`qrprobe.report.comparison.comparison_from_results` (the same one ``qrprobe
report`` shows): the ranked comparison (paper Table 2) with intervals, the external scores against top-1
(Fig. 3), for each pair of neighbours in the ranking the paired difference in the ranking metric with its 95%
interval and p-value, Kendall's τ between the metrics' rankings, and each result's chance levels and
baselines. Every caption names the ranking metric.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..report.comparison import comparison_from_results, significance_blocks
from ..report.section import Section
from ..results import Result


def comparison(results: Sequence[Result], names: Sequence[str], keys: Sequence[str], *,
               external: pd.DataFrame | None, external_columns: Sequence[str] | None, sort_by: str,
               raw: bool = False) -> Section:
    """The comparison section of ``results`` (display ``names``; ``keys`` match the external table), ranked
    by chance-corrected scores (``raw``: the paper's raw scores)."""
    return comparison_from_results(results, names, keys, external=external, external_columns=external_columns,
                                   sort_by=sort_by, raw=raw)


__all__ = ["comparison", "significance_blocks"]
