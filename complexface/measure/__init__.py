"""Measuring edits: landmark AU estimates, pose-free face geometry, background RMSE, identity distance."""

from complexface.facs_motion import UNITS
from complexface.measure.au_change import COUPLED, au_errors, au_mse, change, leakage_aus, motion
from complexface.measure.au_estimate import estimate, quantities
from complexface.measure.geometry import (
    background_rmse,
    frontalize,
    head_pose,
    load_template,
    pose_change,
    shape_change,
    shape_measures,
)
from complexface.measure.identity import (
    SAME_PERSON_THRESHOLD,
    ArcFaceIdentity,
    DlibIdentity,
    IdentityModelError,
    cosine_distance,
    distance,
)

__all__ = [
    "COUPLED", "SAME_PERSON_THRESHOLD", "UNITS", "ArcFaceIdentity", "DlibIdentity", "IdentityModelError", "au_errors",
    "au_mse", "background_rmse", "change", "cosine_distance", "distance", "estimate", "frontalize", "head_pose",
    "leakage_aus", "load_template", "motion", "pose_change", "quantities", "shape_change", "shape_measures",
]
