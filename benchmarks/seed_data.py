"""The seed's data path, shared by the benchmarks that compare against it."""

import numpy as np
import torch
from torch.utils.data import Dataset


class PerItemImages(Dataset):
    """One image per ``__getitem__`` call, converted to float32 on its own (the seed's way)."""

    def __init__(self, images: np.ndarray):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.images[index].astype(np.float32))
