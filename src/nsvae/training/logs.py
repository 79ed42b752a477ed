"""Training logs: device-side accumulation and an optional TensorBoard mirror of the rows.

The training step never waits for the device: :class:`Meter` adds each step's detached logs to
sums that stay on the device, and keeps a device flag of whether every loss so far was finite.
Only at a logging step (or before a checkpoint) are they copied to the host, once.
"""

from __future__ import annotations

from pathlib import Path

import torch

from nsvae.errors import CheckpointError


class Meter:
    """Running sums of per-step logs and a finiteness guard, kept on ``device``.

    Parameters
    ----------
    device : torch.device
        Where the sums live (the training device).
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.checked_step = 0
        self._finite = torch.ones((), dtype=torch.bool, device=device)
        self._finite_steps = torch.zeros((), dtype=torch.int64, device=device)

    def add(self, loss: torch.Tensor, logs: dict[str, torch.Tensor]) -> None:
        """Accumulate one step's loss and logs (no host synchronisation)."""
        self._finite &= torch.isfinite(loss.detach())
        self._finite_steps += self._finite
        for key, value in {"loss": loss.detach(), **logs}.items():
            if key not in self.sums:
                self.sums[key] = torch.zeros(value.shape, dtype=torch.float32, device=self.device)
            self.sums[key] += value
        self.count += 1

    def first_nonfinite_step(self, step: int) -> int | None:
        """The first step since the last check whose loss was NaN or infinite, or None.

        ``step`` is the current step; when every loss was finite it becomes the new reference.
        """
        finite, finite_steps = torch.stack([self._finite.long(), self._finite_steps]).tolist()
        if not finite:
            return self.checked_step + finite_steps + 1
        self._finite_steps.zero_()
        self.checked_step = step
        return None

    def flush(self) -> dict[str, float | list[float]]:
        """Means of the logs since the last flush (one host transfer), then start over."""
        keys = list(self.sums)
        flat = torch.cat([self.sums[k].reshape(-1) for k in keys]).div_(self.count).tolist()
        means, start = {}, 0
        for key in keys:
            size = self.sums[key].numel()
            value = flat[start] if self.sums[key].ndim == 0 else flat[start : start + size]
            means[key] = value
            start += size
        self.sums, self.count = {}, 0
        return means

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Sums (as ``meter.<key>`` tensors) and JSON state, for a checkpoint."""
        tensors = {f"meter.{key}": value for key, value in self.sums.items()}
        return tensors, {"count": self.count, "keys": list(self.sums)}

    def load_state(self, tensors: dict[str, torch.Tensor], state: dict, step: int) -> None:
        """Restore what :meth:`state` saved at ``step``."""
        try:
            self.sums = {key: tensors[f"meter.{key}"].to(self.device) for key in state["keys"]}
            self.count = int(state["count"])
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"checkpoint log state is corrupt: {error}") from None
        self.checked_step = step


class TensorBoard:
    """Mirror of the metrics rows in TensorBoard, active only when it is installed."""

    def __init__(self, log_dir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.writer = None
        else:
            self.writer = SummaryWriter(str(log_dir))

    def write(self, row: dict) -> None:
        """Add every number of a row at its step; dicts and lists (nested too) become tag paths
        (``eval/mig/normalized_mi/3/1``), anything else (text, None) is left out."""
        if self.writer is not None:
            for key, value in row.items():
                if key != "step":
                    self._add(key, value, row["step"])

    def _add(self, tag: str, value, step: int) -> None:
        if isinstance(value, dict):
            items = value.items()
        elif isinstance(value, list | tuple):
            items = enumerate(value)
        else:
            if isinstance(value, int | float):
                self.writer.add_scalar(tag, value, step)
            return
        for key, item in items:
            self._add(f"{tag}/{key}", item, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
