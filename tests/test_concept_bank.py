"""The concept bank: construction, persistence, group selection and its input checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from qrprobe.concepts import ConceptBank
from qrprobe.errors import QRProbeInputError


def _bank() -> ConceptBank:
    dense = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 0, 1]])
    return ConceptBank.from_matrix(dense, ["cat", "dog", "beach", "red"],
                                   groups=["Objects", "Objects", "Scene", "Texture"],
                                   experts=["imagenet", "imagenet", "places365", "color"],
                                   image_ids=["a", "b", "c"])


def test_from_matrix_dense_and_sparse_agree():
    dense = np.array([[1, 0, 1], [0, 0, 1]], dtype=np.int64)
    a = ConceptBank.from_matrix(dense, ["x", "y", "z"])
    b = ConceptBank.from_matrix(sp.csr_matrix(dense.astype(bool)), ["x", "y", "z"])
    assert (a.matrix != b.matrix).nnz == 0
    assert a.matrix.dtype == np.uint8
    assert sp.isspmatrix_csr(a.matrix)
    assert a.groups == ["Labels"]


def test_save_load_roundtrip(tmp_path):
    bank = _bank()
    bank.save(tmp_path / "bank")
    assert sorted(p.name for p in (tmp_path / "bank").iterdir()) == [
        "concepts.parquet", "index.parquet", "manifest.json", "matrix.npz"]
    back = ConceptBank.load(tmp_path / "bank")
    assert (back.matrix != bank.matrix).nnz == 0
    pd.testing.assert_frame_equal(back.concepts, bank.concepts)
    assert list(back.image_ids) == ["a", "b", "c"]
    assert back.content_hash() == bank.content_hash()


def test_save_refuses_to_overwrite_and_leaves_no_temporary(tmp_path):
    bank = _bank()
    bank.save(tmp_path / "bank")
    with pytest.raises(QRProbeInputError, match="already exists"):
        bank.save(tmp_path / "bank")
    assert [p.name for p in tmp_path.iterdir()] == ["bank"]


def test_select_and_drop_groups():
    bank = _bank()
    assert bank.select_groups(["Objects"]).names == ["cat", "dog"]
    assert bank.drop_groups(["Objects", "Texture"]).names == ["beach"]
    with pytest.raises(QRProbeInputError, match=r"unknown concept group.*Material.*has groups"):
        bank.select_groups(["Material"])
    assert bank.display_names()[0] == "[Objects/imagenet] cat"


def test_long_table_csv_and_parquet(tmp_path):
    table = pd.DataFrame({"image_id": ["i1", "i1", "i2", "i3", "i3"],
                          "concept": ["cat", "red", "dog", "cat", "cat"],
                          "group": ["Objects", "Texture", "Objects", "Objects", "Objects"]})
    table.to_csv(tmp_path / "t.csv", index=False)
    table.to_parquet(tmp_path / "t.parquet", index=False)
    for path in (tmp_path / "t.csv", tmp_path / "t.parquet"):
        bank = ConceptBank.from_long_table(path)
        assert list(bank.image_ids) == ["i1", "i2", "i3"]
        assert bank.names == ["cat", "red", "dog"]
        assert bank.matrix.toarray().tolist() == [[1, 1, 0], [0, 0, 1], [1, 0, 0]]  # duplicate row counted once
    rows = ConceptBank.from_long_table(table, image_ids=["i0", "i1", "i2", "i3"])
    assert rows.matrix.toarray()[0].sum() == 0  # an image without any concept


def test_long_table_without_group_uses_default():
    bank = ConceptBank.from_long_table(pd.DataFrame({"image_id": [1, 2], "concept": ["a", "b"]}))
    assert bank.groups == ["Labels"]
    assert list(bank.image_ids) == ["1", "2"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"matrix": np.array([[0, 2]]), "names": ["a", "b"]}, "binary"),
    ({"matrix": np.array([[0.5, 1]]), "names": ["a", "b"]}, "binary"),
    ({"matrix": np.array([[0, 1]]), "names": ["a", "a"]}, "duplicate concept names"),
    ({"matrix": np.array([[0, 1]]), "names": ["a"]}, "1 concept names|columns"),
    ({"matrix": np.array([[0, 1], [1, 0]]), "names": ["a", "b"], "image_ids": ["x", "x"]}, "duplicate image ids"),
])
def test_bad_banks_are_rejected(kwargs, message):
    with pytest.raises(QRProbeInputError, match=message):
        ConceptBank.from_matrix(**kwargs)


def test_long_table_errors(tmp_path):
    with pytest.raises(QRProbeInputError, match="file not found"):
        ConceptBank.from_long_table(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("image,label\n1,cat\n")
    with pytest.raises(QRProbeInputError, match=r"bad.csv.*missing column 'image_id'"):
        ConceptBank.from_long_table(tmp_path / "bad.csv")
    clash = pd.DataFrame({"image_id": ["1", "2"], "concept": ["a", "a"], "group": ["G1", "G2"]})
    with pytest.raises(QRProbeInputError, match="more than one group"):
        ConceptBank.from_long_table(clash)
    with pytest.raises(QRProbeInputError, match="not among the images"):
        ConceptBank.from_long_table(clash.iloc[:1], image_ids=["7"])


def test_unusable_banks():
    with pytest.raises(QRProbeInputError, match="all zeros"):
        ConceptBank.from_matrix(np.zeros((3, 2)), ["a", "b"]).check_usable()
    with pytest.raises(QRProbeInputError, match="no concepts"):
        _bank().select_columns(np.zeros(4, bool)).check_usable()


def test_concat_requires_same_rows():
    bank = _bank()
    other = ConceptBank.from_matrix(np.ones((3, 1)), ["sunny"], "Other", image_ids=["a", "b", "c"])
    both = ConceptBank.concat([bank, other])
    assert both.names[-1] == "sunny"
    assert both.n_concepts == 5
    with pytest.raises(QRProbeInputError, match="image ids differ"):
        ConceptBank.concat([bank, ConceptBank.from_matrix(np.ones((3, 1)), ["x"], image_ids=["a", "b", "z"])])


def test_load_errors(tmp_path):
    with pytest.raises(QRProbeInputError, match="not a concept bank"):
        ConceptBank.load(tmp_path)
    _bank().save(tmp_path / "b")
    (tmp_path / "b" / "matrix.npz").unlink()
    with pytest.raises(QRProbeInputError, match=r"matrix\.npz is missing"):
        ConceptBank.load(tmp_path / "b")
