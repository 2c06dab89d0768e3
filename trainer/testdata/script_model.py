"""A small model a user brings as TorchScript (BatchNorm and dropout, for
1-channel images, 10 classes).
  script_model.py save OUT.pt            writes torch.jit.script(Net()).save(OUT.pt)
  script_model.py save-picky|save-tied|save-flagged OUT.pt   models ResoMap refuses:
      one whose code raises for sizes other than 16 px, tied weights, a bool buffer
  script_model.py save-torchvision OUT.pt NAME CLASSES   a scripted torchvision model
  script_model.py parity W.safetensors X.bin LOGITS.bin N H SEED LABELS LOSS
      loads ResoMap's export into the Python class with strict=True and
      compares eval-mode logits and a training-mode loss after
      torch.manual_seed(SEED) (the same dropout masks) with ResoMap's."""
import json, sys
import numpy as np
import torch
from torch import nn
from safetensors_np import load


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(4))
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(8 * 16, 10)

    def forward(self, x):
        return self.fc(self.drop(torch.flatten(self.features(x), 1)))


class Picky(Net):
    """Takes 16 px only: its code raises for anything else."""

    def forward(self, x):
        if x.shape[-1] != 16:
            raise ValueError("16 px only")
        return self.fc(self.drop(torch.flatten(self.features(x), 1)))


class Tied(Net):
    """Two layers sharing one weight."""

    def __init__(self):
        super().__init__()
        self.fc2 = nn.Linear(8 * 16, 10)
        self.fc2.weight = self.fc.weight


class Flagged(Net):
    """A bool buffer."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mask", torch.ones(3, dtype=torch.bool))


kinds = {"save": Net, "save-picky": Picky, "save-tied": Tied, "save-flagged": Flagged}
if sys.argv[1] == "save-torchvision":  # save-torchvision OUT.pt NAME CLASSES
    import torchvision
    torch.manual_seed(0)
    torch.jit.script(getattr(torchvision.models, sys.argv[3])(num_classes=int(sys.argv[4]))).save(sys.argv[2])
    sys.exit(0)
if sys.argv[1] in kinds:
    torch.manual_seed(0)
    torch.jit.script(kinds[sys.argv[1]]()).save(sys.argv[2])
    sys.exit(0)

wpath, xpath, lpath = sys.argv[2:5]
n, h, seed = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
labels, our_loss = torch.tensor([int(v) for v in sys.argv[8].split(",")]), float(sys.argv[9])
model = Net()
model.load_state_dict(load(wpath), strict=True)
x = torch.from_numpy(np.fromfile(xpath, dtype=np.uint8).reshape(n, 1, h, h)).float() / 255.0
x = (x - 0.5) / 0.25
model.eval()
with torch.no_grad():
    ref = model(x).numpy()
ours = np.fromfile(lpath, dtype=np.float32).reshape(n, 10)
diff = float(np.abs(ref - ours).max())
model.train()
torch.manual_seed(seed)
with torch.no_grad():
    loss = float(nn.functional.cross_entropy(model(x), labels, reduction="sum"))
ok = diff <= 1e-4 and abs(loss - our_loss) <= 1e-4 * abs(loss) + 1e-6
print(json.dumps({"max_abs_diff": diff, "train_loss": loss, "ours": our_loss}))
sys.exit(0 if ok else 1)
