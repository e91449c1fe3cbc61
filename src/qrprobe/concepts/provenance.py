"""Provenance checks of a concept bank against the representation it is used with.

Circularity: an expert of the bank that *is* the network under test (e.g. ImageNet classes predicted by the
same EfficientNet whose features are probed) makes the probe partly read the model's own output back. The
check compares the experts recorded in the bank's ``info["experts"]`` with the feature store's model. Only
experts whose concepts are still in the bank count: a group dropped with ``--drop-groups`` cannot be circular.
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
    model = feature_model.get("model", "") if isinstance(feature_model, Mapping) else str(feature_model)
    messages = []
    for e in used_experts(bank):
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


def used_experts(bank: ConceptBank | Mapping) -> list[dict]:
    """The experts of ``info["experts"]`` whose concepts the bank still has (all of them for a bare ``info``
    dict, or when the concept table does not say which expert made each concept)."""
    info = bank.info if isinstance(bank, ConceptBank) else dict(bank)
    experts = list(info.get("experts", []))
    if not isinstance(bank, ConceptBank) or "expert" not in bank.concepts.columns:
        return experts
    present = set(bank.concepts["expert"].astype(str))
    return [e for e in experts if str(e.get("name")) in present]


def expert_networks(bank: ConceptBank | Mapping) -> list[str]:
    """The networks (``config["model"]``) of the experts the bank still uses."""
    return [str(m) for e in used_experts(bank) if (m := (e.get("config") or {}).get("model"))]
