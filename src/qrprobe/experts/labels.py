"""``labels``: ground-truth concepts from the image source or from a user table.

The source's labels (sub-folder names, a ``label`` column of a file list, ``.cls`` members of tar shards)
become one-hot concepts. A user table (CSV/TSV/parquet with columns ``image_id, concept[, group]``) gives any
number of concepts per image, each with its own group when the table has a ``group`` column.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..concepts.bank import read_table
from ..errors import QRProbeInputError
from .base import Expert, ExpertOutput
from .weights import file_identity


class LabelsExpert(Expert):
    """Ground-truth labels as concepts.

    Parameters
    ----------
    table : path of a long table ``image_id, concept[, group]``; when None the image source's labels are used
    name, group : the expert's name and default group (``Labels``)
    """

    registry_name = "labels"
    default_group = "Labels"

    def __init__(self, *, table: str | None = None, name: str | None = None, group: str | None = None) -> None:
        super().__init__(name=name, group=group)
        self.table = None if table is None else os.fspath(table)
        self._names: list[str] | None = None
        self._groups: list[str] = []
        self._columns_of: dict[str, np.ndarray] = {}
        self.rule = "user table" if self.table else "source label (one-hot)"
        self.unmatched_ids: list[str] = []

    @property
    def concepts(self) -> list[str]:
        if self._names is None:
            raise RuntimeError("the labels expert must be prepared with the collection first")
        return list(self._names)

    def concept_groups(self) -> list[str]:
        return list(self._groups)

    def prepare(self, image_ids: Sequence[str] | None = None, labels: Sequence[str] | None = None) -> None:
        if self.table is not None:
            self._prepare_table(image_ids)
        else:
            self._prepare_source(image_ids, labels)
        self._prepared = True

    def _prepare_source(self, image_ids, labels) -> None:
        if labels is None or image_ids is None:
            raise QRProbeInputError(
                "expert 'labels': the images have no ground-truth labels (use a folder with one sub-folder "
                "per class, a file list with a label column, or give a table with --set labels.table=FILE)")
        labels = ["" if v is None else str(v) for v in labels]
        names = sorted({v for v in labels if v})
        if not names:
            raise QRProbeInputError("expert 'labels': every image's label is empty")
        col = {n: j for j, n in enumerate(names)}
        self._names = names
        self._groups = [self.group] * len(names)
        self._columns_of = {str(i): np.array([col[v]] if v else [], dtype=np.int64)
                            for i, v in zip(image_ids, labels, strict=True)}

    def _prepare_table(self, image_ids) -> None:
        assert self.table is not None  # prepare() calls this only with a table
        table = read_table(self.table)
        for col in ("image_id", "concept"):
            if col not in table.columns:
                raise QRProbeInputError(f"{self.table}: missing column {col!r}; expected columns "
                                        f"image_id, concept[, group], found {list(table.columns)}")
        table = table.dropna(subset=["image_id", "concept"]).astype({"image_id": str, "concept": str})
        if table.empty:
            raise QRProbeInputError(f"{self.table}: the table has no (image_id, concept) rows")
        groups = (table["group"].fillna(self.group).astype(str) if "group" in table.columns
                  else pd.Series(self.group, index=table.index))
        pairs = pd.DataFrame({"concept": table["concept"], "group": groups}).drop_duplicates()
        clash = pairs[pairs["concept"].duplicated()]
        if len(clash):
            raise QRProbeInputError(f"{self.table}: concept {clash['concept'].iloc[0]!r} is given more than "
                                    "one group")
        pairs = pairs.sort_values("concept", kind="stable")
        self._names = pairs["concept"].tolist()
        self._groups = pairs["group"].tolist()
        column_of = {n: j for j, n in enumerate(self._names)}
        table = table.assign(col=table["concept"].map(column_of))
        self._columns_of = {k: np.unique(v.to_numpy(np.int64)) for k, v in table.groupby("image_id")["col"]}
        if image_ids is not None:
            known = set(map(str, image_ids))
            unmatched = sorted(set(self._columns_of) - known)
            if len(unmatched) == len(self._columns_of):
                raise QRProbeInputError(
                    f"{self.table}: none of its image ids matches the images (e.g. table id "
                    f"{unmatched[0]!r} vs image id {next(iter(known), '?')!r})")
            self.unmatched_ids = unmatched

    def _predict(self, images, image_ids) -> ExpertOutput:
        out = np.zeros((len(image_ids), len(self.concepts)), dtype=bool)
        for i, image_id in enumerate(image_ids):
            cols = self._columns_of.get(image_id)
            if cols is not None and cols.size:
                out[i, cols] = True
        return ExpertOutput(out)

    def config(self) -> dict:
        return {**super().config(), "table": file_identity(self.table) if self.table else None,
                "concepts": self._names}
