"""Writes torchvision models' state dicts with torch.save, as a user of
python3-torchvision has them: torchvision_pth.py DIR MODEL... (vit_b_16 at
its default 224 px; 1000 classes, freshly initialised: no download)."""
import os, sys
import torch, torchvision

torch.manual_seed(0)
for name in sys.argv[2:]:
    torch.save(getattr(torchvision.models, name)().state_dict(), os.path.join(sys.argv[1], name + ".pth"))
