"""The probe wing: the reverse probe from concepts to cluster ids, and the split it is trained and scored on.

- ``reverse_probe``: :class:`ReverseProbe` (a linear softmax probe on sparse concept vectors; model selection on
  the validation split, the class prior being epoch 0);
- ``sgd``: the paper's SGD schedule, fused over sparse rows; ``lbfgs``: full-batch L-BFGS to the optimum of the
  same objective (L2) or with an L1 penalty;
- ``split``: :func:`stratified_split` (per-cluster train / validation / test).
"""

from .reverse_probe import ReverseProbe
from .split import Split, stratified_split

__all__ = ["ReverseProbe", "Split", "stratified_split"]
