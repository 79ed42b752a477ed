"""Checkpoints: a safetensors file of tensors and a JSON file of state, written atomically.

A checkpoint of step N is two files in a run's ``checkpoints/`` folder:

- ``step-0000000N.safetensors``: model parameters, optimiser moments, log accumulators;
- ``step-0000000N.json``: the step, optimiser hyperparameters and state layout, RNG states and
  the SHA-256 of the tensors file.

Each file is written atomically (:func:`nsvae.files.atomic_write`), the tensors first and the
JSON last, so the JSON is the commit marker: a tensors file without its JSON
is an unfinished checkpoint and is ignored. Loading reads only safetensors and JSON; nothing is
ever unpickled.

Writing (and pruning) holds an exclusive lock on ``checkpoints/.lock`` and reading a shared one,
so a reader never opens a checkpoint that the trainer is replacing. :func:`load_latest` falls
back to the newest intact checkpoint, with a warning, when newer ones are corrupt.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

import numpy as np
import safetensors.torch
import torch

from nsvae.errors import CheckpointError, one_line, warn
from nsvae.files import JSON_LIMIT, atomic_write, file_lock, read_regular

FORMAT = 1
TENSORS_LIMIT = 2**34  # bytes of one checkpoint's tensors: far above any model nsvae builds
_NAME = re.compile(r"step-(\d{8,})\.json")
LOCK = ".lock"


def checkpoint_name(step: int) -> str:
    """File stem of the checkpoint of ``step``: ``step-00001000``."""
    return f"step-{step:08d}"


def load_latest(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The newest intact checkpoint of a run directory (as :func:`load_checkpoint`).

    Newer checkpoints that are corrupt are skipped with a warning naming them.

    Raises
    ------
    CheckpointError
        If there is no checkpoint, or none is intact.
    """
    directory = Path(run_dir) / "checkpoints"
    with file_lock(directory / LOCK, exclusive=False):
        found = list_checkpoints(directory)
        if not found:
            raise CheckpointError(f"no checkpoint in {run_dir}")
        failures = []
        for path in reversed(found):
            try:
                tensors, state = load_checkpoint(path)
            except CheckpointError as error:
                failures.append(error)
                continue
            if failures:
                warn(f"{failures[0]}; using the newest intact checkpoint, step {state['step']}")
            return tensors, state
    raise CheckpointError(f"no intact checkpoint in {run_dir}: {failures[0]}")


def load_module(
    module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str | None = None
) -> None:
    """Load the ``<prefix>.*`` tensors of a checkpoint into ``module`` (without a prefix: all of
    them, as in exported weights).

    Raises
    ------
    CheckpointError
        If they do not fit the module (one line, the last line of torch's message).
    """
    weights = (
        tensors
        if prefix is None
        else {
            k.removeprefix(f"{prefix}."): v
            for k, v in tensors.items()
            if k.startswith(f"{prefix}.")
        }
    )
    expected = module.state_dict()
    for name, value in weights.items():
        if name in expected and value.dtype != expected[name].dtype:
            raise CheckpointError(
                f"checkpoint does not fit the {prefix or 'model'} of the "
                f"config: {name} is {value.dtype}, the model's is "
                f"{expected[name].dtype}"
            )
    try:
        module.load_state_dict(weights)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[-1].strip()
        raise CheckpointError(
            f"checkpoint does not fit the {prefix or 'model'} of the config: {first}"
        ) from None


def list_checkpoints(directory: Path) -> list[Path]:
    """Committed checkpoints (their JSON files) in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.fullmatch(p.name))]
    return [path for _, path in sorted(found)]


def save_checkpoint(directory: Path, step: int, tensors: dict, state: dict, keep: int) -> Path:
    """Write the checkpoint of ``step`` and delete all but the newest ``keep`` checkpoints.

    Parameters
    ----------
    directory : Path
        The run's ``checkpoints/`` folder (created if missing).
    step : int
        Number of optimisation steps taken.
    tensors : dict of str to Tensor
        Everything stored in the safetensors file (moved to CPU here).
    state : dict
        JSON-serialisable state; ``format``, ``step``, ``tensors`` and ``sha256`` are added.
    keep : int
        Number of checkpoints to keep, this one included.

    Returns
    -------
    Path
        The JSON file of the new checkpoint.
    """
    directory = Path(directory)
    name = checkpoint_name(step)
    blob = safetensors.torch.save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    header = {
        "format": FORMAT,
        "step": step,
        "tensors": f"{name}.safetensors",
        "sha256": hashlib.sha256(blob).hexdigest(),
    }
    path = directory / f"{name}.json"
    with file_lock(directory / LOCK):
        atomic_write(directory / f"{name}.safetensors", blob)
        atomic_write(path, json.dumps({**header, **state}).encode())
        _prune(directory, keep)
    return path


def _prune(directory: Path, keep: int) -> None:
    """Delete old checkpoints (JSON first: un-commit, then tensors) and unfinished files."""
    committed = list_checkpoints(directory)
    for path in committed[:-keep]:
        path.unlink()
    kept = {path.with_suffix(".safetensors") for path in committed[-keep:]}
    for path in directory.glob("step-*"):
        if path.suffix != ".json" and path not in kept:
            path.unlink(missing_ok=True)


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint written by :func:`save_checkpoint`, checking its format and checksum.

    Returns
    -------
    tensors : dict of str to Tensor
        On CPU.
    state : dict
        The JSON state.

    Raises
    ------
    CheckpointError
        If either file is missing, unreadable, corrupt or does not match its checksum.
    """
    path = Path(path)
    try:
        state = json.loads(read_regular(path, JSON_LIMIT).decode("utf-8"))
    except OSError as error:
        raise CheckpointError(
            f"corrupt checkpoint {path}: {error.strerror or one_line(error)}"
        ) from None
    except (ValueError, RecursionError) as error:  # ValueError: any JSON it refuses
        raise CheckpointError(f"corrupt checkpoint {path}: {one_line(error)}") from None
    valid = (
        isinstance(state, dict)
        and state.get("format") == FORMAT
        and isinstance(state.get("step"), int)
        and isinstance(state.get("tensors"), str)
        and Path(state["tensors"]).name == state["tensors"]
    )
    if not valid:
        raise CheckpointError(f"corrupt checkpoint {path}: not an nsvae checkpoint")
    tensors_path = path.parent / state["tensors"]
    try:
        blob = read_regular(tensors_path, TENSORS_LIMIT)
    except OSError as error:
        raise CheckpointError(f"cannot read {tensors_path}: {error.strerror}") from None
    if hashlib.sha256(blob).hexdigest() != state.get("sha256"):
        raise CheckpointError(f"corrupt checkpoint {tensors_path}: checksum mismatch")
    try:
        tensors = safetensors.torch.load(blob)
    except Exception as error:  # safetensors raises its own error types on malformed files
        raise CheckpointError(f"corrupt checkpoint {tensors_path}: {one_line(error)}") from None
    if (bad := first_nonfinite(tensors)) is not None:
        raise CheckpointError(
            f"corrupt checkpoint {tensors_path}: {bad} holds NaN or infinite values"
        )
    return tensors, state


def first_nonfinite(tensors: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor holding NaN or infinity, or None."""
    return next(
        (
            key
            for key, value in tensors.items()
            if value.is_floating_point() and not torch.isfinite(value).all()
        ),
        None,
    )


WEIGHTS = "model.safetensors"


def save_weights(path: Path, module: torch.nn.Module, step: int) -> None:
    """Write ``module``'s parameters and buffers alone (fp32, on CPU) as a safetensors file
    whose metadata holds the ``step``: an exported model, a few MB, that cannot be resumed."""
    tensors = {
        name: value.detach()
        .to("cpu", torch.float32 if value.is_floating_point() else value.dtype)
        .contiguous()
        for name, value in module.state_dict().items()
    }
    metadata = {"format": "nsvae-weights", "step": str(step)}
    atomic_write(path, safetensors.torch.save(tensors, metadata=metadata))


def load_weights(path: Path) -> tuple[dict[str, torch.Tensor], int]:
    """The tensors and step of a file written by :func:`save_weights`.

    Raises
    ------
    CheckpointError
        If the file is unreadable, not safetensors, not an nsvae weights file, or holds NaN.
    """
    path = Path(path)
    try:
        with safetensors.safe_open(path, framework="pt") as opened:
            metadata = opened.metadata() or {}
            tensors = {name: opened.get_tensor(name) for name in opened.keys()}  # noqa: SIM118
    except OSError as error:
        raise CheckpointError(f"cannot read {path}: {error.strerror or one_line(error)}") from None
    except Exception as error:  # safetensors raises its own error types on malformed files
        raise CheckpointError(f"corrupt weights file {path}: {one_line(error)}") from None
    if metadata.get("format") != "nsvae-weights" or not metadata.get("step", "").isdigit():
        raise CheckpointError(f"{path} is not an nsvae weights file (nsvae export writes them)")
    if (bad := first_nonfinite(tensors)) is not None:
        raise CheckpointError(f"corrupt weights file {path}: {bad} holds NaN or infinite values")
    return tensors, int(metadata["step"])


def split_optimizer(
    optimizer: torch.optim.Optimizer, prefix: str = "optimizer"
) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser's state into tensors (``<prefix>.<param>.<name>``) and a JSON layout."""
    state_dict = optimizer.state_dict()
    tensors, layout = {}, {}
    for index, entry in state_dict["state"].items():
        layout[str(index)] = {}
        for name, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{index}.{name}"] = value
                layout[str(index)][name] = {"tensor": f"{prefix}.{index}.{name}"}
            else:
                layout[str(index)][name] = {"value": value}
    return tensors, {"param_groups": state_dict["param_groups"], "state": layout}


def join_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, layout: dict) -> None:
    """Load into ``optimizer`` the state split by :func:`split_optimizer`."""
    try:
        state = {
            int(index): {
                name: tensors[slot["tensor"]] if "tensor" in slot else slot["value"]
                for name, slot in entry.items()
            }
            for index, entry in layout["state"].items()
        }
        optimizer.load_state_dict({"state": state, "param_groups": layout["param_groups"]})
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint optimiser state does not fit: {error}") from None
    for parameter, entry in optimizer.state.items():
        for name, value in entry.items():
            entry[name] = like_parameter(value, parameter)


def like_parameter(value, parameter: torch.Tensor):
    """``value`` laid out in memory as ``parameter`` (channels-last weights stay channels-last).

    Checkpoints store contiguous tensors; a fused optimiser (:func:`nsvae.objectives.base.adam`)
    walks a parameter, its gradient and its moments in memory order, so all must share strides.
    Anything that is not a tensor of the parameter's shape is returned as it is.
    """
    if (
        not torch.is_tensor(value)
        or value.shape != parameter.shape
        or value.stride() == parameter.stride()
    ):
        return value
    return torch.empty_like(parameter, dtype=value.dtype).copy_(value)


def rng_state(device: torch.device) -> dict:
    """States of the torch (CPU, and CUDA when used), numpy and Python global generators."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()  # noqa: NPY002 (global)
    version, internal, python_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state().tolist(),
        "numpy": [kind, keys.tolist(), position, has_gauss, gauss],
        "python": [version, list(internal), python_gauss],
    }
    if device.type == "cuda":
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    """Restore the generators captured by :func:`rng_state`."""
    try:
        torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
        kind, keys, position, has_gauss, gauss = state["numpy"]
        keys = np.asarray(keys, dtype=np.uint32)
        np.random.set_state((kind, keys, position, has_gauss, gauss))  # noqa: NPY002 (global)
        version, internal, python_gauss = state["python"]
        random.setstate((version, tuple(internal), python_gauss))
        if "cuda" in state and torch.cuda.is_available():
            cuda = [torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]]
            torch.cuda.set_rng_state_all(cuda)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"checkpoint RNG state is corrupt: {error}") from None
