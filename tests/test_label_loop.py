"""The labelling loop and the ``qrprobe label`` / ``qrprobe experts`` commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from skimage import data

from qrprobe.cli.main import main
from qrprobe.concepts.bank import ConceptBank
from qrprobe.errors import QRProbeInputError
from qrprobe.experts import Expert, ExpertOutput, circularity_warnings, label_images
from qrprobe.experts.label import run_labelling


@pytest.fixture
def image_folder(tmp_path):
    """Two classes of small real images, one truncated JPEG and one non-image file."""
    root = tmp_path / "images"
    (root / "cat").mkdir(parents=True)
    (root / "person").mkdir()
    cat, person = data.chelsea()[::4, ::4], data.astronaut()[::4, ::4]
    for i in range(3):
        Image.fromarray(np.roll(cat, 7 * i, axis=1)).save(root / "cat" / f"{i}.jpg")
        Image.fromarray(np.roll(person, 7 * i, axis=1)).save(root / "person" / f"{i}.png")
    red = np.zeros((20, 20, 3), np.uint8)
    red[..., 0] = 255
    Image.fromarray(red).save(root / "cat" / "red.png")
    (root / "cat" / "broken.jpg").write_bytes((root / "cat" / "0.jpg").read_bytes()[:300])
    (root / "readme.txt").write_text("not an image")
    return root


def test_label_folder_skips_unreadable_images_and_reports_them(image_folder, tmp_path):
    result = run_labelling(image_folder, ["labels", "color", "image-stats"], output=tmp_path / "bank",
                           batch_size=3, chunk_size=4, progress=False)
    bank, report = result.bank, result.report
    assert bank.n_images == 7
    assert report.n_listed == 8
    assert [s["image_id"] for s in report.skipped] == ["cat/broken.jpg"]
    assert "truncated" in report.skipped[0]["reason"] or "decode" in report.skipped[0]["reason"]
    assert [r["image_id"] for r in report.rejected] == ["readme.txt"]
    loaded = ConceptBank.load(tmp_path / "bank")
    assert loaded.content_hash() == bank.content_hash()
    assert "cat/broken.jpg" not in set(loaded.image_ids)
    row = list(loaded.image_ids).index("cat/red.png")
    present = {loaded.display_names()[j] for j in loaded.matrix[row].indices}
    assert present == {"[Labels/labels] cat", "[Texture/color] red", "[Other/image-stats] high saturation"}
    assert loaded.info["labelling"]["skipped"][0]["image_id"] == "cat/broken.jpg"
    assert {e["name"] for e in loaded.info["experts"]} == {"labels", "color", "image-stats"}
    table = loaded.concepts.set_index("name")
    assert table.loc["red", "threshold"] == 0.05
    assert table.loc["red", "expert"] == "color"
    assert not (tmp_path / ".bank.partial").exists()


def test_images_are_decoded_once_for_all_experts(image_folder, monkeypatch):
    import qrprobe.images.decode as decode

    calls = []
    real = decode.decode_image
    monkeypatch.setattr(decode, "decode_image", lambda b: calls.append(1) or real(b))
    label_images(image_folder, ["labels", "color", "image-stats"], progress=False)
    assert len(calls) == 8  # 7 good images and the broken one, each decoded once


class _Flaky(Expert):
    """Raises on the second batch the first time, to simulate an interrupted run."""

    registry_name = "flaky"
    calls = 0
    fail = True

    @property
    def concepts(self):
        return ["seen"]

    def _predict(self, images, image_ids):
        type(self).calls += 1
        if type(self).fail and type(self).calls == 2:
            raise KeyboardInterrupt
        return ExpertOutput(np.ones((len(images), 1), bool))


def test_an_interrupted_run_resumes_from_finished_chunks(image_folder, tmp_path):
    out = tmp_path / "bank"
    _Flaky.calls, _Flaky.fail = 0, True
    with pytest.raises(KeyboardInterrupt):
        run_labelling(image_folder, ["color", _Flaky()], output=out, batch_size=4, chunk_size=4, progress=False)
    assert not out.exists()
    assert (tmp_path / ".bank.partial" / "chunk-000000.npz").is_file()
    _Flaky.fail = False
    result = run_labelling(image_folder, ["color", _Flaky()], output=out, batch_size=4, chunk_size=4,
                           progress=False)
    assert result.report.resumed_images == 4
    assert result.bank.n_images == 7
    fresh = run_labelling(image_folder, ["color", _Flaky()], batch_size=4, chunk_size=4, progress=False).bank
    assert (fresh.matrix != result.bank.matrix).nnz == 0
    again = run_labelling(image_folder, ["color", _Flaky()], output=out, batch_size=4, chunk_size=4, progress=False)
    assert again.report.reused
    with pytest.raises(QRProbeInputError, match="made with other images or experts"):
        run_labelling(image_folder, ["color"], output=out, progress=False)


def test_bad_inputs_are_clear_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(QRProbeInputError, match="no image files"):
        label_images(empty, ["color"], progress=False)
    with pytest.raises(QRProbeInputError, match="unknown expert 'colour'"):
        label_images([np.zeros((4, 4, 3), np.uint8)], ["colour"], progress=False)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"garbage")
    with pytest.raises(QRProbeInputError, match="none of the 1 images could be read"):
        label_images(bad, ["color"], progress=False, output=tmp_path / "bank")
    assert not [p.name for p in tmp_path.iterdir() if "bank" in p.name]  # no output, no work folder
    with pytest.raises(QRProbeInputError, match="not among --experts"):
        label_images([np.zeros((4, 4, 3), np.uint8)], ["color"], groups={"text": "Other"}, progress=False)


def test_in_memory_images_and_duplicate_concept_names_across_experts():
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    bank = label_images([red, data.camera()], ["labels", "color"], image_ids=["r", "c"], labels=["red", "grey"],
                        progress=False)
    assert bank.names[:2] == ["grey (labels)", "red (labels)"]
    assert "red (color)" in bank.names
    assert "blue" in bank.names
    assert set(bank.concepts.loc[bank.concepts["name"] == "red (color)", "concept"]) == {"red"}
    assert list(bank.image_ids) == ["r", "c"]


def test_circularity_is_flagged_for_the_same_network():
    info = {"experts": [{"name": "imagenet", "config": {"model": "efficientnet-lite0"}}, {"name": "color",
                                                                                         "config": {}}]}
    assert len(circularity_warnings(info, "efficientnet-lite0")) == 1
    assert circularity_warnings(info, {"model": "timm:resnet50"}) == []
    info = {"experts": [{"name": "imagenet", "config": {"model": "timm:resnet50"}}]}
    assert "circularity" in circularity_warnings(info, "timm:resnet50")[0]


def test_cli_label_writes_a_bank(image_folder, tmp_path, capsys):
    out = tmp_path / "bank"
    rc = main(["label", str(image_folder), "--experts", "labels,color", "-o", str(out), "--no-progress",
               "--set", "color.min_fraction=0.2", "--group", "color=Other"])
    assert rc == 0
    text = capsys.readouterr()
    assert "7 images x" in text.out
    assert "broken.jpg" in text.err
    bank = ConceptBank.load(out)
    assert set(bank.concepts.loc[bank.concepts["expert"] == "color", "group"]) == {"Other"}
    assert bank.concepts.loc[bank.concepts["expert"] == "color", "threshold"].tolist() == [0.2] * 11


def test_cli_label_unknown_expert(image_folder, tmp_path, capsys):
    assert main(["label", str(image_folder), "--experts", "colour", "-o", str(tmp_path / "x")]) == 2
    assert "unknown expert 'colour'" in capsys.readouterr().err


def test_cli_label_missing_weights(image_folder, tmp_path, capsys):
    assert main(["label", str(image_folder), "--experts", "minc", "-o", str(tmp_path / "y"),
                 "--weights", f"minc={tmp_path / 'missing.pth'}"]) == 2
    assert "not found" in capsys.readouterr().err


def test_cli_label_option_without_a_name(image_folder, tmp_path):
    assert main(["label", str(image_folder), "--experts", "color", "-o", str(tmp_path / "z"),
                 "--set", "color=0.1"]) == 2


def test_cli_experts_lists_the_experts(capsys):
    assert main(["experts"]) == 0
    listing = capsys.readouterr().out
    assert "places365" in listing
    assert "Texture" in listing


def test_cli_experts_describes_one_expert(capsys):
    assert main(["experts", "text", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["group"] == "Other"
    assert "box_threshold" in info["options"]
