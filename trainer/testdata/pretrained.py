"""Writes state dicts with torch.save, as practitioners have them, and the
eval-mode logits of one of them, for trainer/pretrained_test.go:
  resnet18.pth   torchvision's resnet18() (1000 classes), BatchNorm statistics
                 moved off their defaults so that loading them matters
  wrapped.pth    the same under {"state_dict": ...}, as training scripts save
  vgg11.pth      another architecture
  strided.pth    {"t": a transposed (non-contiguous) 2x3 tensor, "n": an int64 tensor}
  logits.bin     resnet18's float32 logits of input.bin (N C H W uint8,
                 normalised by MEAN and STD)
Usage: pretrained.py OUT_DIR input.bin N C H W MEAN STD"""
import sys
import numpy as np
import torch, torchvision

out, xpath = sys.argv[1:3]
n, c, h, w = map(int, sys.argv[3:7])
mean, std = float(sys.argv[7]), float(sys.argv[8])

torch.manual_seed(3)
model = torchvision.models.resnet18()
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.num_batches_tracked.fill_(7)
model.eval()
torch.save(model.state_dict(), f"{out}/resnet18.pth")
torch.save({"state_dict": model.state_dict(), "epoch": 3}, f"{out}/wrapped.pth")
torch.save(torchvision.models.vgg11().state_dict(), f"{out}/vgg11.pth")
torch.save({"t": torch.arange(6, dtype=torch.float32).reshape(2, 3).t(), "n": torch.tensor([5, -2])}, f"{out}/strided.pth")
x = np.fromfile(xpath, dtype=np.uint8).reshape(n, c, h, w)
x = (torch.from_numpy(x).float() / 255.0 - mean) / std
with torch.no_grad():
    model(x).numpy().astype(np.float32).tofile(f"{out}/logits.bin")
