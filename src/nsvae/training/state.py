"""Everything the next step depends on, saved to and restored from a run's checkpoints.

Tensors: ``model.*`` (the VAE), ``objective.<name>.*`` (the objective's own modules),
``optimizer.*`` (the VAE's Adam) and ``optimizer.<name>.*`` (the objective's other optimisers),
``meter.*`` (log sums). JSON: optimiser layouts, every RNG state, the sampler's generator, the
meter's counts and the elapsed time. On CPU, N steps + restore + N steps equal 2N steps bit for
bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from nsvae.checks import is_number
from nsvae.data.sampler import BatchSampler
from nsvae.errors import CheckpointError
from nsvae.objectives import Objective
from nsvae.rundir.checkpoint import (
    join_optimizer,
    load_latest,
    load_module,
    rng_state,
    save_checkpoint,
    set_rng_state,
    split_optimizer,
)
from nsvae.training.logs import Meter

MODEL_OPTIMIZER = "model"


@dataclass
class TrainingState:
    """The objects of a training run whose state a checkpoint holds."""

    model: torch.nn.Module
    objective: Objective
    optimizers: dict[str, torch.optim.Optimizer]
    sampler: BatchSampler
    meter: Meter

    def save(
        self, run_dir: Path, step: int, elapsed: float, device: torch.device, keep: int
    ) -> Path:
        """Write the checkpoint of ``step`` into ``run_dir/checkpoints``, keeping the newest K."""
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        for name, module in self.objective.modules().items():
            tensors |= {f"objective.{name}.{k}": v for k, v in module.state_dict().items()}
        layouts = {}
        for name, optimizer in self.optimizers.items():
            optimizer_tensors, layouts[name] = split_optimizer(optimizer, _prefix(name))
            tensors |= optimizer_tensors
        meter_tensors, meter_state = self.meter.state()
        state = {
            "elapsed": elapsed,
            "optimizer": layouts.pop(MODEL_OPTIMIZER),
            "rng": rng_state(device),
            "sampler": self.sampler.state_dict(),
            "meter": meter_state,
        }
        if layouts:
            state["optimizers"] = layouts
        return save_checkpoint(run_dir / "checkpoints", step, tensors | meter_tensors, state, keep)

    def restore(self, run_dir: Path) -> tuple[int, float]:
        """Load the newest intact checkpoint of ``run_dir``; return ``(step, elapsed)``.

        Raises
        ------
        CheckpointError
            If it is missing, corrupt or does not fit these objects.
        """
        tensors, state = load_latest(run_dir)
        load_module(self.model, tensors, "model")
        for name, module in self.objective.modules().items():
            load_module(module, tensors, f"objective.{name}")
        layouts = {MODEL_OPTIMIZER: state.get("optimizer", {}), **state.get("optimizers", {})}
        for name, optimizer in self.optimizers.items():
            join_optimizer(optimizer, tensors, layouts.get(name, {}))
        try:
            self.sampler.load_state_dict(state["sampler"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(f"checkpoint sampler state is corrupt: {error}") from None
        self.meter.load_state(tensors, state.get("meter", {}), state["step"])
        set_rng_state(state.get("rng", {}))
        elapsed = state.get("elapsed", 0.0)
        if not is_number(elapsed) or not 0 <= elapsed < float("inf"):
            raise CheckpointError(f"checkpoint elapsed time is corrupt: {elapsed!r}")
        return state["step"], float(elapsed)


def _prefix(name: str) -> str:
    return "optimizer" if name == MODEL_OPTIMIZER else f"optimizer.{name}"
