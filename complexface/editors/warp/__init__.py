"""Geometric FACS editor ("warp"): landmark-anchored displacement fields, a one-to-one smooth
warp, a synthesised mouth interior and soft appearance shading. No neural weights.

Design
- Face frame: origin between the irises, ``u`` along the eye line (image right, so head roll
  drops out), ``v`` down, unit = inter-ocular distance. Each AU is a sum of smooth compact bumps
  and curve bands anchored to its landmarks (brows, lids, cheeks, nose wings, lip corners, chin,
  the inner-lip seam), designed at intensity 3 and linear in intensity; the two sides mirror
  (the far half of a turned head is narrowed). Fields fade to zero inside the face region
  (``complexface.faces.align.face_mask``), so hair and background stay exactly still.
- Per face (cached) each AU's field is evaluated once on a coarse grid (``grid_step`` px). An
  edit is ``sum(intensity x field)``; where a grid cell would keep less than ``min_jacobian`` of
  its area (less only on the neck that a jaw drop folds under the chin) the displacement is attenuated smoothly
  around it (scaling the whole edit down is the guaranteed fallback), so the warp stays one-to-one: a brow
  pushed too far stops above the lid. The forward map is inverted on the coarse grid (Newton with a bisection
  fallback), upsampled, and applied with one ``cv2.remap`` over the window the edit touches
  (``complexface.editors.displacement``).
- Calibration (``calibrate``): per face, each AU's field is scaled so that at intensity 3 its landmarks move
  by three FACS steps of published facial motion (``complexface.facs_motion``: the axes and units the
  measurer reads); ``AU_PAIRS`` add what two AUs do together and neither alone (AU12 with AU25 lifts the
  lateral upper lip: a smile's crescent onto the upper teeth; AU1 with AU4 keeps the lateral brows down: the
  oblique brows of sadness).
- Lip parting (AU25, AU26) moves the two lips on either side of the inner-lip seam; where the warp
  stretches the seam band open, ``mouth.py`` paints a cavity with depth and skull-fixed teeth drawn once
  per face (upper teeth, lower incisors in wide openings, a gum line when the lip rises far enough). In a
  mouth that is already open the seam follows the darkest line between the lips, so its real teeth move
  with their lip and the new gap opens between them.
- Rigid things: the eyeballs stay still under moving lids (``eyes.py``: AU5 uncovers sclera and iris, not a
  stretched iris) and glasses frames are inpainted out before the warp and pasted back unmoved
  (``glasses.py``).
- Appearance (``appearance.py``): each AU's skin relief (creases, rolls, bulges: forehead lines, glabella
  furrows, the raised cheek, lower-lid bulge, infraorbital furrow and crow's feet, nose-root lines, the
  nasolabial fold, the lip-corner depression, chin dimpling) shaded as a soft luminance ratio map in the
  face's own lighting (expression ratio images), multiplied into the source so the warp carries it.
"""

from complexface.editors.warp.editor import WarpEditor
from complexface.editors.warp.geometry import FaceFrame

__all__ = ["FaceFrame", "WarpEditor"]
