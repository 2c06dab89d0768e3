"""Reference transforms for ResoMap's parity tests, with torchvision on PIL.

  make DIR [N]       writes photo-like JPEGs (PIL, quality 90) into DIR: a
                     few sizes, or N of 500x375 (ImageNet's typical shape)
  reference JOB OUT  for each file of JOB (JSON): the validation transform
                     Resize(round(res/0.875)) + CenterCrop(res), and
                     resized_crop + hflip of its box on the image as
                     ResoMap stores it (shorter side at most
                     round(res/0.875)), as raw interleaved RGB into OUT
"""
import json
import os
import sys

import numpy as np
from PIL import Image, ImageDraw
import torchvision.transforms as T
import torchvision.transforms.functional as F

SIZES = [(500, 375), (375, 500), (1024, 768), (640, 480), (333, 251)]


def photo(rng, w, h):
    # Smooth colour field (upsampled noise) with hard-edged shapes: both the
    # low and the high frequencies a resize filter must get right.
    small = rng.integers(0, 256, size=(h // 25 + 2, w // 25 + 2, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.BICUBIC)
    d = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(5, w // 3)), y0 + int(rng.integers(5, h // 3))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        if rng.random() < 0.5:
            d.rectangle([x0, y0, x1, y1], fill=colour)
        else:
            d.line([x0, y0, x1, y1], fill=colour, width=int(rng.integers(1, 6)))
    return img


def make(out, n=None):
    rng = np.random.default_rng(7)
    sizes = SIZES if n is None else [(500, 375)] * (n // 2)
    for cls in ("a", "b"):
        for i, (w, h) in enumerate(sizes):
            d = os.path.join(out, cls)
            os.makedirs(d, exist_ok=True)
            photo(rng, w, h).save(os.path.join(d, "p%d.jpg" % i), quality=90)


def reference(job_path, out):
    job = json.load(open(job_path))
    res = job["res"]
    side = round(res / 0.875)
    val = T.Compose([T.Resize(side), T.CenterCrop(res)])
    for k, item in enumerate(job["files"]):
        img = Image.open(item["path"]).convert("RGB")
        np.asarray(val(img)).tofile(os.path.join(out, "val_%02d.raw" % k))
        top, left, h, w, flip = item["box"]
        # ResoMap stores photos larger than the resize side at that side,
        # smaller ones as they are: boxes are drawn on what it stores.
        base = T.Resize(side)(img) if min(img.size) > side else img
        crop = F.resized_crop(base, top, left, h, w, [res, res])
        if flip:
            crop = F.hflip(crop)
        np.asarray(crop).tofile(os.path.join(out, "crop_%02d.raw" % k))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else None)
    else:
        reference(sys.argv[2], sys.argv[3])
