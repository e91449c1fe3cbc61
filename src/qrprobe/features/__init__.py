"""Feature stores: one feature vector per image, from a frozen model."""

from .config import ExtractConfig
from .extract import ExtractionStats, extract, run_extraction
from .store import FeatureStore, FeatureStoreWriter, write_feature_store

__all__ = ["ExtractConfig", "ExtractionStats", "FeatureStore", "FeatureStoreWriter", "extract", "run_extraction",
           "write_feature_store"]
