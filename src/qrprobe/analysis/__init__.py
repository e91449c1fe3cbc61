"""Analyses of reverse-probing results (the paper's Sec. 4 and appendices), as plain library functions.

- :func:`compare_results`, :func:`fit_line`: model comparison (Table 2) and its correlation with an external
  score (Fig. 3).
- :func:`group_breakdown`: cumulative and single concept groups (Fig. 4, Table 3).
- :func:`explain_result`, :func:`explain_results`, :func:`explain_groups`: confused cluster pairs, the
  concepts separating them, per-cluster summaries (Fig. 5, 8-11).
- :func:`k_sweep`, :func:`k_sweep_table`: scores against K (Fig. 6, 7).
- :func:`forward_probe`: forward linear probes beside the cluster readout (Fig. 2).
- :func:`concepts_to_labels`: concepts → ground-truth labels (App. D.1).
- :func:`transfer`: a trained quantizer and probe applied to other images (Tables 4, 7).
- :func:`self_labels`: probe a given labelling instead of K-means (Table 6).
"""

from __future__ import annotations

from .breakdown import Breakdown, group_breakdown
from .coefficients import summarize_clusters
from .compare import LineFit, compare_results, fit_line, read_external
from .concepts_to_labels import concepts_to_labels, labels_from_group
from .confusion import confusion_drops, confusion_matrix, most_confused_pairs
from .explain import Explanation, explain_groups, explain_result, explain_results
from .forward_probe import ForwardProbe, forward_probe, forward_probe_labels
from .ksweep import KSweep, k_sweep, k_sweep_table
from .self_labels import read_labels, self_labels
from .transfer import TransferResult, transfer

__all__ = [
    "Breakdown", "Explanation", "ForwardProbe", "KSweep", "LineFit", "TransferResult", "compare_results",
    "concepts_to_labels", "confusion_drops", "confusion_matrix", "explain_groups", "explain_result",
    "explain_results", "fit_line", "forward_probe", "forward_probe_labels", "group_breakdown", "k_sweep",
    "k_sweep_table", "labels_from_group", "most_confused_pairs", "read_external", "read_labels", "self_labels",
    "summarize_clusters", "transfer",
]
