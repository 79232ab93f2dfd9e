import math

import torch

from training.trainer_utils import gathered_ranks


class RecordingAccelerator:
    """Gathers nothing, records what it was given."""

    def __init__(self, device: str):
        self.device = torch.device(device)
        self.given = None

    def gather_for_metrics(self, tensor):
        self.given = tensor
        return tensor


def test_validation_ranks_go_to_the_accelerator_as_float32():
    # NCCL gathers only tensors on the GPU, and MPS holds no float64: the ranks go to the
    # accelerator's device as float32, whatever device and dtype target_ranks computed them on.
    scores = torch.tensor([[0.1, 0.9, 0.5], [0.3, 0.2, 0.1]])
    cpu = RecordingAccelerator("cpu")
    assert gathered_ranks(cpu, scores, torch.tensor([2, -1])).tolist() == [2.0, math.inf]
    assert cpu.given.dtype == torch.float32
    elsewhere = RecordingAccelerator("meta")
    gathered_ranks(elsewhere, scores, torch.tensor([2, 0]))
    assert elsewhere.given.device.type == "meta" and elsewhere.given.dtype == torch.float32
