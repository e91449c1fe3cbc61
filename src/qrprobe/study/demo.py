"""The built-in demo: ``demo.yaml`` beside this module, with its images bundled in ``qrprobe/data/demo``."""

from __future__ import annotations

from pathlib import Path

from .config import StudyConfig
from .load import study_from_dict
from .yamlsrc import load_located

DEMO_CONFIG = Path(__file__).with_name("demo.yaml")
DEMO_DATA = Path(__file__).resolve().parents[1] / "data" / "demo"
PREFIX = "@demo/"


def _resolve(value):
    if isinstance(value, str) and value.startswith(PREFIX):
        return str(DEMO_DATA / value[len(PREFIX):])
    if isinstance(value, dict):
        return {k: _resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    return value


def demo_study() -> StudyConfig:
    """The demo study, with the bundled files' paths filled in."""
    value, locations = load_located(DEMO_CONFIG)
    return study_from_dict(_resolve(value), locations, DEMO_DATA)
