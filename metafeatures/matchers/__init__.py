"""Dataset matchers: learn which known dataset a batch of image fingerprints comes from."""

from metafeatures.matchers.io import MATCHER_FORMAT_VERSION, load_matcher, save_matcher
from metafeatures.matchers.kmeans import KMeansVoteMatcher
from metafeatures.matchers.mlp import MLPVoteMatcher
from metafeatures.matchers.moments import MomentMLPMatcher
from metafeatures.matchers.registry import get_matcher, list_matchers, register_matcher

__all__ = [
    "MATCHER_FORMAT_VERSION",
    "KMeansVoteMatcher",
    "MLPVoteMatcher",
    "MomentMLPMatcher",
    "get_matcher",
    "list_matchers",
    "load_matcher",
    "register_matcher",
    "save_matcher",
]
