"""Provenance checks of a concept bank against the representation it is used with.

Circularity: an expert of the bank that *is* the network under test (e.g. ImageNet classes predicted by the
same EfficientNet whose features are probed) makes the probe partly read the model's own output back. The
check compares the experts recorded in the bank's ``info["experts"]`` with the feature store's model.
"""

from __future__ import annotations

from collections.abc import Mapping

from .bank import ConceptBank


def circularity_warnings(bank: ConceptBank | Mapping, feature_model: str | Mapping) -> list[str]:
    """Warn when an expert of the bank is the network whose features are being probed.

    Parameters
    ----------
    bank : a ConceptBank (or its ``info`` dict)
    feature_model : the feature store's ``model`` (e.g. ``"efficientnet-lite0"``, ``"timm:resnet50"``) or its
        manifest

    Returns
    -------
    list of messages, empty when no expert shares the representation's network.
    """
    info = bank.info if isinstance(bank, ConceptBank) else dict(bank)
    model = feature_model.get("model", "") if isinstance(feature_model, Mapping) else str(feature_model)
    messages = []
    for e in info.get("experts", []):
        expert_model = (e.get("config") or {}).get("model")
        if not expert_model or not model:
            continue
        if _same_network(str(expert_model), model):
            messages.append(
                f"circularity: the concept expert {e.get('name')!r} uses {expert_model}, the same network as the "
                f"representation under test ({model}); its predictions are part of the concepts, so the probe "
                "partly reads the model's own output back")
    return messages


def _same_network(expert_model: str, feature_model: str) -> bool:
    def norm(s: str) -> str:
        s = s.strip().lower()
        for prefix in ("builtin:", "timm:", "torchvision:"):
            s = s.removeprefix(prefix)
        return s.split(":")[0]

    return norm(expert_model) == norm(feature_model)
