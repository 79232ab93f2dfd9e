import pytest
import torch

from regen_models.devices import pick_device


def test_auto_picks_the_gpu_where_there_is_one():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device("auto").type == pick_device(None).type == expected
    assert pick_device("cpu") == torch.device("cpu")


def test_devices_that_are_not_there_are_named():
    for name in ("gpu", "meta", "xpu"):
        with pytest.raises(ValueError, match=f"device '{name}': expected auto, cpu, cuda, cuda:N"):
            pick_device(name)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda:1': this machine has no CUDA device"):
            pick_device("cuda:1")
    else:
        count = torch.cuda.device_count()
        with pytest.raises(ValueError, match=f"this machine has {count} CUDA devices"):
            pick_device(f"cuda:{count}")
