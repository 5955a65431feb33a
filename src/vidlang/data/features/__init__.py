"""Feature stores, the canonical feature file, what a model asks of its features
(:class:`FeatureSpec`), and temporal resampling.

Importing this package registers the stores in ``vidlang.registry.FEATURE_STORES``.
"""

from vidlang.data.features.canonical import (
    CanonicalH5Writer,
    durations_path,
    write_canonical_h5,
)
from vidlang.data.features.resample import (
    RESAMPLE_MODES,
    fixed_bin_pool,
    l2_normalise_rows,
    resample,
    segment_average,
    uniform_pick,
    uniform_pick_indices,
)
from vidlang.data.features.spec import FeatureSpec
from vidlang.data.features.stores import (
    CanonicalFeatureStore,
    FeatureStore,
    HDF5FeatureStore,
    MissingVideoError,
    NonFiniteFeaturesError,
    NpyFolderStore,
    check_finite_features,
    load_feature_array,
    open_feature_store,
)
from vidlang.data.features.validate import ValidationReport, validate_store

__all__ = [
    "RESAMPLE_MODES",
    "CanonicalFeatureStore",
    "CanonicalH5Writer",
    "FeatureSpec",
    "FeatureStore",
    "HDF5FeatureStore",
    "MissingVideoError",
    "NonFiniteFeaturesError",
    "ValidationReport",
    "NpyFolderStore",
    "check_finite_features",
    "durations_path",
    "fixed_bin_pool",
    "l2_normalise_rows",
    "load_feature_array",
    "open_feature_store",
    "resample",
    "segment_average",
    "uniform_pick",
    "uniform_pick_indices",
    "validate_store",
    "write_canonical_h5",
]
