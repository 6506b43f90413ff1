"""Multimodal requests: attach images (count and resolution) to a workload's requests.

Owns turning "k images of W x H pixels per request" into the workload's `images` and
`image_tokens` columns with the model's tiling rule (`llmsched.sim.hardware.VisionEncoder`);
the image tokens are added to the prompt, since the LLM prefills them like text.
"""

from __future__ import annotations

import numpy as np

from llmsched.sim.errors import InputError
from llmsched.sim.hardware.derived import image_tokens
from llmsched.sim.workload.core import Workload


def with_images(w: Workload, images_per_request, width_px: int, height_px: int, model: str,
                source: str = "workload") -> Workload:
    """`w` with `images_per_request` (a number or one per request) images of width_px x height_px
    each; every image adds `image_tokens(model, width_px, height_px)` prompt tokens."""
    for name, v in (("width_px", width_px), ("height_px", height_px)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InputError(source, name, f"image resolution must be a whole number of pixels >= 1, got {v!r}",
                             "e.g. width_px = 4032, height_px = 3024")
    count = np.broadcast_to(np.asarray(images_per_request), (w.n,))
    if count.dtype.kind not in "iu" or (w.n and count.min() < 0):
        raise InputError(source, "images", f"images per request must be whole numbers >= 0, got {images_per_request!r}")
    count = count.astype(np.int64)
    per_image = image_tokens(model, int(width_px), int(height_px)) if count.any() else 0
    tokens = count * per_image
    return w.with_columns(prompt_tokens=w.prompt_tokens + tokens, images=count, image_tokens=tokens)
