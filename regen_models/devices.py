"""Which torch device a model runs on: `auto` picks the GPU where there is one."""

from __future__ import annotations

# The `--device` help of the commands that run models (`regen predict`, `regen space`).
DEVICE_HELP = (
    "where the models run: auto (a CUDA GPU where there is one, else the CPU), cpu, cuda, "
    "cuda:N or mps (default: %(default)s)"
)


def pick_device(name: str | None = "auto"):
    """`auto` (or None): CUDA if this machine has it, else the CPU; otherwise a torch device
    name (`cpu`, `cuda`, `cuda:1`, `mps`), refused clearly where it is not there."""
    import torch  # here, not at import: the CLI reads DEVICE_HELP without loading torch

    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {name!r}: expected auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: this machine has no CUDA device")
    if device.type == "cuda" and device.index is not None:
        if device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA devices"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r}: MPS is not available on this machine")
    return device
