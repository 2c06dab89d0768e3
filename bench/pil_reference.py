"""torchvision/PIL's speed on ResoMap's data jobs, one core, for `make bench`.

  pil_reference.py DIR RES...

For each resolution: images/s of decode + Resize(round(res/0.875)) +
CenterCrop(res) (what building ResoMap's cache does per image) and of
decode + RandomResizedCrop(res) + RandomHorizontalFlip (a PyTorch loader's
per-image training work), over every JPEG under DIR.
"""
import glob
import os
import sys
import time

import torch
from PIL import Image
import torchvision.transforms as T


def rate(files, transform):
    start = time.perf_counter()
    for f in files:
        transform(Image.open(f).convert("RGB"))
    return len(files) / (time.perf_counter() - start)


def main():
    torch.set_num_threads(1)
    files = sorted(glob.glob(os.path.join(sys.argv[1], "**", "*.jpg"), recursive=True))
    if not files:
        sys.exit("no JPEG files under " + sys.argv[1])
    for res in map(int, sys.argv[2:]):
        val = T.Compose([T.Resize(round(res / 0.875)), T.CenterCrop(res)])
        train = T.Compose([T.RandomResizedCrop(res), T.RandomHorizontalFlip()])
        print("torchvision/PIL %4dpx, 1 core: decode+Resize+CenterCrop %6.0f img/s, decode+RandomResizedCrop+flip %6.0f img/s (%d files)"
              % (res, rate(files, val), rate(files, train), len(files)))


if __name__ == "__main__":
    main()
