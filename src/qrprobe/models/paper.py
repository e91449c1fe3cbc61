"""The paper's Table 2 models (Laina et al., ICLR 2022, Sec. 4.2, Table 2, App. B-C) as qrprobe resolves them.

One :class:`PaperModel` per Table 2 row that ``examples/paper-imagenet.yaml`` lists: the MODEL string, the
weights (a hub tag or the checkpoint file of the method's own release), the transform the model was
evaluated with, and the linear accuracy the paper reports. ``docs/paper-models.md`` is generated from this
table (:func:`paper_models_markdown`, ``scripts/update_paper_tables.py``) and the tests check the example
study, the docs and the resolution through :func:`qrprobe.models.create_representation` against it.

Facts and their sources: the linear accuracies and the method references are Table 2's; the hub tags' files
are those of timm's pretrained configurations (``pretrained_cfg["url"]``, checked offline by the tests); the
transforms are the linear-evaluation transforms of each method's released code (MoCo, MoCo-v3, SwAV and
DeepCluster-v2, VISSL: ``Resize(256)`` + ``CenterCrop(224)``, bilinear; DINO: the same, bicubic; DeiT: resize
224 / 0.875 = 256, bicubic), all with the ImageNet mean and std. Checkpoint files cannot be fetched here: the
release names are given where the releases publish them, otherwise a descriptive local name.
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Transform:
    """The evaluation transform: resize the shorter side to ``resize``, centre crop ``crop`` (pixels),
    ``interpolation``, then normalise with ``mean`` and ``std`` (of [0, 1] RGB values)."""

    resize: int = 256
    crop: int = 224
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def short(self) -> str:
        stats = "ImageNet mean/std" if (self.mean, self.std) == (IMAGENET_MEAN, IMAGENET_STD) \
            else f"mean {list(self.mean)}, std {list(self.std)}"
        return f"resize {self.resize} / crop {self.crop}, {self.interpolation}, {stats}"


BILINEAR = Transform()
BICUBIC = Transform(interpolation="bicubic")


@dataclass(frozen=True)
class PaperModel:
    """One Table 2 row.

    Attributes
    ----------
    name : the row's name in Table 2 (and the model's name in the example study)
    backbone : ``"ResNet-50"`` or ``"ViT-B/16"``
    block : the block of Table 2 the row sits in (ResNet-50 rows by pre-training epochs: ``"200 ep"``, ...;
        ``"ViT-B/16"``; ``"—"`` for the supervised ResNet-50)
    reference : the citation Table 2 gives for the method
    linear_top1 : ImageNet linear-probe top-1 (%) as Table 2 reports it; None for the supervised rows ("—")
    model : the MODEL string qrprobe builds
    weights : the checkpoint file (under ``checkpoints/``) for a file-based row; None for a hub tag
    hub_tag : the timm pretrained tag the MODEL resolves to (None for checkpoint rows)
    hub_file : the file name of that tag's weights (``pretrained_cfg["url"]``)
    source : where the weights come from
    preprocess : the ``preprocess`` stated in the study (a preset of
        :data:`qrprobe.models.preprocess.PREPROCESS_PRESETS`); None where a user factory brings its own
    transform : what that must resolve to (None: the factory's own)
    loading : how the release's checkpoint maps onto the MODEL's architecture
    """

    name: str
    backbone: str
    block: str
    reference: str
    linear_top1: float | None
    model: str
    weights: str | None
    hub_tag: str | None
    hub_file: str | None
    source: str
    preprocess: str | None
    transform: Transform | None
    loading: str


_R50 = "torchvision:resnet50"
_VISSL = ("a VISSL checkpoint: convert it to the torchvision layout first (VISSL's "
          "`extra_scripts/convert_vissl_to_torchvision.py`)")
_MOCO = "loads as released: `state_dict` → `module.encoder_q.*` (prefixes stripped, `encoder_k` dropped)"
_CHECK = "layout not verified here: check the load report (`model_info.checkpoint` in the store's manifest)"


def _ckpt(name: str, block: str, reference: str, top1: float, weights: str, source: str, loading: str,
          transform: Transform = BILINEAR, model: str = _R50, backbone: str = "ResNet-50") -> PaperModel:
    preset = "imagenet" if transform == BILINEAR else "imagenet-bicubic"
    return PaperModel(name, backbone, block, reference, top1, model, weights, None, None, source, preset,
                      transform, loading)


PAPER_MODELS: tuple[PaperModel, ...] = (
    _ckpt("Jigsaw", "200 ep", "Goyal et al., 2019", 46.58, "jigsaw_in1k_goyal19_resnet50.torch",
          "VISSL model zoo (facebookresearch/vissl), Jigsaw ResNet-50 on IN-1k", _VISSL),
    _ckpt("ClusterFit", "200 ep", "Yan et al., 2020", 53.63, "clusterfit_in1k_resnet50.torch",
          "VISSL model zoo (facebookresearch/vissl), ClusterFit ResNet-50 on IN-1k", _VISSL),
    PaperModel("CMC", "ResNet-50", "200 ep", "Tian et al., 2019", 58.60, "python:checkpoints/cmc_model.py:build",
               None, None, None, "the CMC / PyContrast releases (HobbitLong)", None, None,
               "CMC's ImageNet network is two ResNet-50 streams on the L and ab channels of Lab input: it does "
               "not fit `torchvision:resnet50`. Write `checkpoints/cmc_model.py` with a `build()` that returns "
               "the network with its weights loaded and its own transform (Lab conversion and CMC's "
               "normalisation), as `(module, preprocess)`"),
    _ckpt("MoCo-v1", "200 ep", "He et al., 2020", 60.60, "moco_v1_200ep_pretrain.pth.tar",
          "facebookresearch/moco", _MOCO),
    _ckpt("SeLa-v1", "200 ep", "Asano et al., 2020", 61.50, "sela_v1_resnet50.pth",
          "yukimasano/self-label", _CHECK),
    _ckpt("SimCLR", "200 ep", "Chen et al., 2020a", 66.61, "simclr_200ep_resnet50.torch",
          "VISSL model zoo (facebookresearch/vissl), SimCLR ResNet-50, 200 epochs", _VISSL),
    _ckpt("MoCo-v2", "200 ep", "Chen et al., 2020b", 67.70, "moco_v2_200ep_pretrain.pth.tar",
          "facebookresearch/moco", _MOCO),
    _ckpt("InfoMin", "200 ep", "Tian et al., 2020", 70.10, "infomin_200ep_resnet50.pth",
          "HobbitLong/PyContrast model zoo, InfoMin, 200 epochs", _CHECK),
    _ckpt("MoCHi", "200 ep", "Kalantidis et al., 2020", 67.60, "mochi_200ep_resnet50.pth.tar",
          "the MoCHi release (NAVER LABS Europe)", _CHECK),
    _ckpt("PCL-v2", "200 ep", "Li et al., 2021", 67.60, "PCL_v2_epoch200.pth.tar", "salesforce/PCL", _MOCO),
    _ckpt("SwAV", "200 ep", "Caron et al., 2020", 73.90, "swav_200ep_pretrain.pth.tar", "facebookresearch/swav",
          "loads as released: `module.*` (prefix stripped; `projection_head`, `prototypes` unused)"),
    _ckpt("OBoW", "200 ep", "Gidaris et al., 2021", 73.80, "obow_200ep_resnet50.pth.tar", "valeoai/obow", _CHECK),
    _ckpt("DeepCluster-v2", "800 ep", "Caron et al., 2020", 75.18, "deepclusterv2_800ep_pretrain.pth.tar",
          "facebookresearch/swav",
          "loads as released: `module.*` (prefix stripped; `projection_head`, `prototypes` unused)"),
    _ckpt("DINO (R50)", "800 ep", "Caron et al., 2021", 75.30, "dino_resnet50_pretrain.pth",
          "facebookresearch/dino", "loads as released: torchvision keys without `fc`", transform=BICUBIC),
    _ckpt("BYOL", "1000 ep", "Grill et al., 2020", 74.40, "byol_resnet50_1000ep.pth",
          "deepmind-research/byol (`pretrain_res50x1.pkl`, JAX/Haiku)",
          "a JAX/Haiku pickle: convert it to a torchvision ResNet-50 state dict first"),
    _ckpt("MoCo-v3 (R50)", "1000 ep", "Chen et al., 2021", 74.60, "r-50-1000ep.pth.tar",
          "facebookresearch/moco-v3",
          "loads as released: `state_dict` → `module.base_encoder.*` (the MLP `fc` head unused)"),
    PaperModel("Supervised (R50)", "ResNet-50", "—", "He et al., 2016", None, "timm:resnet50.tv_in1k", None,
               "resnet50.tv_in1k", "resnet50-0676ba61.pth",
               "torchvision's original weights (IMAGENET1K_V1, 76.13% top-1), through timm's hub", "imagenet",
               BILINEAR, "hub weights"),
    _ckpt("MoCo-v3 (ViT-B/16)", "ViT-B/16", "Chen et al., 2021", 76.70, "vit-b-300ep.pth.tar",
          "facebookresearch/moco-v3",
          "loads as released into timm's ViT-B/16: `state_dict` → `module.base_encoder.*` (the MLP `head` "
          "unused)", model="timm:vit_base_patch16_224", backbone="ViT-B/16"),
    PaperModel("DINO (ViT-B/16)", "ViT-B/16", "ViT-B/16", "Caron et al., 2021", 78.20, "timm:vit_base_patch16_224.dino",
               None, "vit_base_patch16_224.dino", "dino_vitbase16_pretrain.pth",
               "facebookresearch/dino's ViT-B/16, through timm's hub", "imagenet-bicubic", BICUBIC,
               "hub weights (timm's own transform for this tag crops 224 of 248: stated instead)"),
    PaperModel("Supervised (ViT-B/16)", "ViT-B/16", "ViT-B/16", "Touvron et al., 2021", None,
               "timm:deit_base_patch16_224.fb_in1k", None, "deit_base_patch16_224.fb_in1k",
               "deit_base_patch16_224-b5f2ef4d.pth", "DeiT-B (facebookresearch/deit, 81.8% top-1), through timm's "
               "hub", "imagenet-bicubic", BICUBIC,
               "hub weights (timm's own transform for this tag crops 224 of 248: stated instead)"),
)


def paper_model(name: str) -> PaperModel:
    """The Table 2 row called ``name``."""
    for entry in PAPER_MODELS:
        if entry.name == name:
            return entry
    raise KeyError(f"no Table 2 model named {name!r}; names: {[e.name for e in PAPER_MODELS]}")


def paper_models_markdown() -> str:
    """The table of ``docs/paper-models.md`` (Markdown), one row per :data:`PAPER_MODELS` entry."""
    head = ("| Table 2 row | backbone | block | lin. acc. (Table 2) | MODEL | weights | source | transform "
            "(`preprocess`) | loading |")
    lines = [head, "|" + "---|" * 9]
    for e in PAPER_MODELS:
        acc = "—" if e.linear_top1 is None else f"{e.linear_top1:.2f}"
        if e.hub_tag:
            weights = f"hub tag `{e.hub_tag}` (`{e.hub_file}`)"
        else:
            weights = f"`checkpoints/{e.weights}`" if e.weights else "loaded by your factory"
        transform = f"{e.transform.short()} (`{e.preprocess}`)" if e.transform else "your factory's"
        lines.append(f"| {e.name} ({e.reference}) | {e.backbone} | {e.block} | {acc} | `{e.model}` | {weights} | "
                     f"{e.source} | {transform} | {e.loading} |")
    return "\n".join(lines)
