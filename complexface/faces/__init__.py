"""Photos in, aligned faces out: loading, landmarks, alignment, paste-back, bg condition, face sets."""

from complexface.faces.align import AlignedFace, align, paste_back
from complexface.faces.condition import BackgroundCondition
from complexface.faces.faceset import FaceEntry, FaceSet, FaceSetError, demo_faceset
from complexface.faces.image_io import ImageError, load_image, save_image
from complexface.faces.landmarks import LandmarkDetector, Landmarks, NoFaceError
from complexface.faces.pipeline import Face, FacePipeline

__all__ = [
    "AlignedFace", "BackgroundCondition", "Face", "FaceEntry", "FacePipeline", "FaceSet", "FaceSetError",
    "ImageError", "LandmarkDetector", "Landmarks", "NoFaceError", "align", "demo_faceset", "load_image",
    "paste_back", "save_image",
]
