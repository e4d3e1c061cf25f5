"""Geometric FACS editor ("warp"): landmark-anchored displacement fields, a one-to-one smooth
warp, a synthesised mouth interior and soft wrinkle shading. No neural weights.

Design
- Face frame: origin between the irises, ``u`` along the eye line (image right, so head roll
  drops out), ``v`` down, unit = inter-ocular distance. Each AU is a sum of smooth compact bumps
  and curve bands anchored to its landmarks (brows, lids, cheeks, nose wings, lip corners, chin,
  the inner-lip seam), designed at intensity 3 and linear in intensity; the two sides mirror
  (the far half of a turned head is narrowed). Fields fade to zero inside the face region
  (``complexface.faces.align.face_mask``), so hair and background stay exactly still.
- Per face (cached) each AU's field is evaluated once on a coarse grid (``grid_step`` px). An
  edit is ``sum(intensity x field)``; where a grid cell would keep less than ``min_jacobian`` of
  its area the displacement is attenuated smoothly around it (scaling the whole edit down is the
  guaranteed fallback), so the warp stays one-to-one: a brow pushed too far stops above the lid.
  The forward map is inverted on the coarse grid (Newton with a bisection fallback), upsampled,
  and applied with one ``cv2.remap`` over the window the edit touches
  (``complexface.editors.displacement``).
- Lip parting (AU25, AU26) moves the two lips on either side of the inner-lip seam; the seam
  band the warp stretches open is painted as a dark cavity with a hint of upper teeth. In a
  mouth that is already open the seam follows the darkest line between the lips, so its real
  teeth move with their lip and the new gap opens between them.
- Wrinkles (AU4 glabella furrows, AU6 crow's feet, AU9 nose-bridge lines, AU12 nasolabial fold)
  are soft multiplicative shading drawn on the source from landmarks, so the warp carries them.
"""

from complexface.editors.warp.editor import WarpEditor
from complexface.editors.warp.geometry import FaceFrame

__all__ = ["FaceFrame", "WarpEditor"]
