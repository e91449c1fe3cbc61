"""Published expert files: downloaded to ``.partial``, verified against published digests before use, pinned
when no digest is published, refused (exit 2, cache untouched, no partial file) when they do not match; the
offline mode and ``qrprobe fetch-experts``; the restricted unpickler."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from qrprobe.cli.main import main
from qrprobe.errors import QRProbeInputError
from qrprobe.experts import published as pub
from qrprobe.experts.safe_pickle import load_numpy_pickle
from qrprobe.experts.weights import fetch_published

PAYLOAD = b"weights " * 1000


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("QRPROBE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("QRPROBE_OFFLINE", raising=False)
    return tmp_path / "cache" / "experts"


def _entry(tmp_path: Path, *, sha256: str | None = "right", archive: bool = False, name: str = "w.bin",
           md5: str | None = None) -> pub.PublishedExpert:
    source = tmp_path / ("w.zip" if archive else "src.bin")
    if archive:
        with zipfile.ZipFile(source, "w") as z:
            z.writestr(f"folder/{name}", PAYLOAD)
    else:
        source.write_bytes(PAYLOAD)
    digest = hashlib.sha256(PAYLOAD).hexdigest() if sha256 == "right" else sha256
    spec = pub.PublishedFile(name, (source.as_uri(),), size=len(PAYLOAD), sha256=digest, md5=md5,
                             hash_source="test", archive=archive)
    return pub.PublishedExpert("places365", {"weights": spec}, "test", "test", "paper", "ours", "exact")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_a_download_is_verified_and_renamed(cache, tmp_path):
    path = fetch_published("places365", _entry(tmp_path))
    assert path == cache / "w.bin"
    assert path.read_bytes() == PAYLOAD
    assert _leftovers(cache) == ["w.bin"]  # no .partial, no pin (the hash is published)


def test_a_zip_download_is_extracted_and_verified(cache, tmp_path):
    entry = _entry(tmp_path, archive=True, md5=hashlib.md5(PAYLOAD).hexdigest())
    assert fetch_published("places365", entry).read_bytes() == PAYLOAD
    assert _leftovers(cache) == ["w.bin"]


def test_a_wrong_published_hash_leaves_no_file(cache, tmp_path):
    entry = _entry(tmp_path, sha256="0" * 64)
    with pytest.raises(QRProbeInputError) as err:
        fetch_published("places365", entry)
    message = str(err.value)
    assert "\n" not in message
    assert "w.bin.partial" in message
    assert "0" * 64 in message
    assert hashlib.sha256(PAYLOAD).hexdigest() in message
    assert _leftovers(cache) == []


def test_a_corrupted_cached_file_is_refused_and_left_as_it_is(cache, tmp_path):
    entry = _entry(tmp_path)
    path = fetch_published("places365", entry)
    damaged = b"X" + PAYLOAD[1:]
    path.write_bytes(damaged)
    with pytest.raises(QRProbeInputError, match=r"SHA256 of .*w\.bin' is [0-9a-f]{64}, expected [0-9a-f]{64}"):
        fetch_published("places365", entry)
    assert path.read_bytes() == damaged
    assert _leftovers(cache) == ["w.bin"]


def test_an_unpublished_hash_is_pinned_at_the_first_download(cache, tmp_path):
    entry = _entry(tmp_path, sha256=None)
    path = fetch_published("places365", entry)
    pin = cache / "w.bin.sha256"
    assert pin.read_text().split()[0] == hashlib.sha256(PAYLOAD).hexdigest()
    assert fetch_published("places365", entry) == path  # the pin matches
    path.write_bytes(PAYLOAD[:-1] + b"Y")
    with pytest.raises(QRProbeInputError, match="pinned at its first download"):
        fetch_published("places365", entry)


def test_offline_uses_the_cache_and_never_connects(cache, tmp_path, monkeypatch):
    import urllib.request

    entry = _entry(tmp_path)
    monkeypatch.setenv("QRPROBE_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError("offline: no connection may be opened")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(QRProbeInputError, match=r"downloads are off .*qrprobe fetch-experts places365"):
        fetch_published("places365", entry)
    monkeypatch.delenv("QRPROBE_OFFLINE")
    monkeypatch.undo()  # urlopen back: fill the cache online (a login node) ...
    monkeypatch.setenv("QRPROBE_CACHE", str(cache.parent))
    fetch_published("places365", entry)
    monkeypatch.setenv("QRPROBE_OFFLINE", "1")  # ... then a compute node reads it offline
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    assert fetch_published("places365", entry).read_bytes() == PAYLOAD


def test_fetch_experts_cli(cache, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(pub.PUBLISHED, "places365", _entry(tmp_path))
    assert main(["fetch-experts", "places365,color"]) == 0
    out = capsys.readouterr().out
    assert "places365: weights:" in out
    assert "verified" in out
    assert "color: nothing to fetch" in out
    (cache / "w.bin").write_bytes(b"garbage")
    assert main(["fetch-experts", "places365"]) == 2
    err = capsys.readouterr()
    assert "expected " + hashlib.sha256(PAYLOAD).hexdigest() in err.out + err.err
    assert (cache / "w.bin").read_bytes() == b"garbage"  # left for inspection
    assert main(["fetch-experts", "no-such-expert"]) == 2


def test_experts_name_shows_source_licence_size_hash_and_the_papers_model(capsys):
    assert main(["experts", "text"]) == 0
    out = capsys.readouterr().out
    for needle in ("CRAFT (official, no refiner)", "status     exact", "licence    MIT", "83152330 bytes",
                   "sha256 4a5efbfb48b4081100544e75e1e2b57f8de3d84f213004b14b85fd4b3748db17",
                   "md5 2f8227d2def4037cdb3b34389dcf9ec1"):
        assert needle in out
    assert main(["experts", "minc"]) == 0
    out = capsys.readouterr().out
    assert "sha1 1225f149519c7a0113c43a056153c1bb15468ac0" in out
    assert "substitute" in out
    assert main(["experts", "places365"]) == 0
    assert "not published (pinned on first use)" in capsys.readouterr().out


def test_no_expert_with_a_public_checkpoint_says_no_public_weights(capsys):
    assert main(["experts"]) == 0
    out = capsys.readouterr().out
    assert "no public weights" not in out
    for name in pub.PUBLISHED:
        line = next(x for x in out.splitlines() if x.split()[:1] == [name])
        assert "download" in line or "wheel" in line, line


def test_the_catalog_is_consistent():
    for name, entry in pub.PUBLISHED.items():
        assert entry.status in pub.STATUSES, name
        for spec in entry.files.values():
            assert spec.urls
            assert all(u.startswith(("http://", "https://")) for u in spec.urls)
            for algorithm, n in (("sha256", 64), ("sha1", 40), ("md5", 32)):
                value = spec.digests.get(algorithm)
                assert value is None or (len(value) == n and int(value, 16) >= 0), (name, algorithm)
            assert spec.digests or "no hash published" in spec.hash_source


# ---------------------------------------------------------------- restricted unpickler
def test_numpy_pickles_of_arrays_load_and_code_is_refused(tmp_path):
    layers = {"conv1_1": {"weights": np.ones((2, 3), np.float32), "bias": np.zeros(2, np.float32)}}
    good = tmp_path / "good.npy"
    np.save(good, layers, allow_pickle=True)
    loaded = load_numpy_pickle(good)
    assert loaded["conv1_1"]["weights"].shape == (2, 3)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": ()})
    bad = tmp_path / "bad.npy"
    bad.write_bytes(header.getvalue() + pickle.dumps(Evil()))
    with pytest.raises(QRProbeInputError, match=r"refused global (posix|os|nt)\.system"):
        load_numpy_pickle(bad)


# ---------------------------------------------------------------- experts: paper
def test_the_paper_set_keeps_what_runs_offline_and_names_the_rest(cache, monkeypatch):
    from qrprobe.experts.paper_set import PAPER_SET, paper_experts
    from qrprobe.experts.weights import wheel_file

    monkeypatch.setenv("QRPROBE_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(cache.parent / "torch"))
    monkeypatch.setenv("HF_HOME", str(cache.parent / "hf"))
    selection = paper_experts()
    names = [n for n, _ in selection.experts]
    craft = wheel_file(pub.PUBLISHED["text"], pub.PUBLISHED["text"].files["weights"]) is not None
    assert names == ["labels", "color", *(["text"] if craft else [])]
    assert dict(selection.experts).get("text", {"detector": "craft"}) == {"detector": "craft"}
    assert set(selection.missing) == ({n for n, _ in PAPER_SET} - set(names)) | {"dtd", "open-images"}
    assert "qrprobe fetch-experts places365" in selection.missing["places365"]
    assert "QRPROBE_OFFLINE is set" in selection.missing["coco"]
    # a file in the cache (fetched on a login node) brings its expert back
    cache.mkdir(parents=True)
    (cache / "resnet50_places365.pth.tar").write_bytes(b"x")
    assert "places365" in [n for n, _ in paper_experts().experts]
    note = selection.note()
    assert note.startswith("experts: paper: left out here: ")
    assert "dtd (" in note


def test_a_study_with_experts_paper_expands_and_notes_the_missing(cache, monkeypatch, tmp_path):
    from qrprobe.study.load import expand_paper_experts

    monkeypatch.setenv("QRPROBE_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    value = expand_paper_experts({"name": "s", "experts": "paper", "notes": ["mine"]})
    assert value["experts"][:2] == [{"name": "labels"}, {"name": "color"}]
    assert value["notes"][0] == "mine"
    assert value["notes"][1].startswith("experts: paper: left out here: coco (")
    assert expand_paper_experts({"experts": [{"name": "color"}]}) == {"experts": [{"name": "color"}]}
    assert expand_paper_experts({"experts": "paper"})["notes"][0].startswith("experts: paper: left out here: ")


@pytest.mark.slow
def test_label_with_experts_paper_offline(cache, monkeypatch, tmp_path, capsys):
    from qrprobe.concepts.bank import ConceptBank
    from qrprobe.synthetic import write_image_folder

    monkeypatch.setenv("QRPROBE_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    images = write_image_folder(tmp_path / "imgs", {"a": 2, "b": 1})
    assert main(["label", str(images), "--experts", "paper", "-o", str(tmp_path / "bank"), "--quiet"]) == 0
    assert "experts: paper: left out here: coco (" in capsys.readouterr().err
    experts = [e["name"] for e in ConceptBank.load(tmp_path / "bank").info["experts"]]
    assert experts[:2] == ["labels", "color"]
    if "text" in experts:  # with the extra [craft]: the paper's detector
        text = next(e for e in ConceptBank.load(tmp_path / "bank").info["experts"] if e["name"] == "text")
        assert text["config"]["detector"] == "craft"
