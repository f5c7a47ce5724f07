"""Writes MLP TorchScript artifacts of varied sizes for bench/many_models.sh.

    python3 bench/make_mlps.py FOLDER [COUNT] [SMALLEST_MB] [LARGEST_MB]

Each takes FP32 rows of 64 features to 10 scores through two hidden layers
whose width sets its size; sizes are spread evenly between the bounds.
Weights are random (seeded), which is all a serving benchmark needs.
"""

import math
import pathlib
import sys

import torch


class Mlp(torch.nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(64, width), torch.nn.ReLU(), torch.nn.Linear(width, width), torch.nn.ReLU(),
            torch.nn.Linear(width, 10))

    def forward(self, x):
        return self.layers(x)


def main() -> None:
    folder = pathlib.Path(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    smallest, largest = (float(sys.argv[3]) if len(sys.argv) > 3 else 1.0), (float(sys.argv[4]) if len(sys.argv) > 4 else 40.0)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for index in range(count):
        megabytes = smallest + (largest - smallest) * index / max(count - 1, 1)
        # Parameters are about width^2 + 74 * width floats of 4 bytes.
        width = int((-74 + math.sqrt(74 ** 2 + 4 * megabytes * 2 ** 20 / 4)) / 2)
        path = folder / f"mlp-{index:02d}.pt"
        if path.exists():
            continue
        module = torch.jit.script(Mlp(width).eval())
        module.save(str(path))
        print(f"{path}: width {width}, {path.stat().st_size / 2 ** 20:.1f} MiB")


if __name__ == "__main__":
    main()
