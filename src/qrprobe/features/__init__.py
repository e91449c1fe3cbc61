"""Feature stores: one feature vector per image, from a frozen model."""

from .store import FeatureStore, write_feature_store

__all__ = ["FeatureStore", "write_feature_store"]
