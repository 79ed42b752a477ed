"""Train on a CelebA-format zip of generated pictures and copy its figures into docs/.

    python examples/celeba_format_run.py [--images 2000] [--steps 400] [--out runs/celeba-format]

No real CelebA is available offline: this writes a zip in the layout of ``img_align_celeba.zip``
(``img_align_celeba/000001.jpg``, ... 178 x 218 JPEGs, one of them cut short) of the generated
pictures the tests use (``tests/conftest.py``: a coloured background and a moving, growing
ellipse with eyes and a mouth), trains on it with ``--data images`` (the preprocessing of
``--data celeba``, without its check of the published checksum, which a generated zip cannot
pass), writes the report and copies ``docs/celeba_format_traversals.png`` and
``docs/celeba_format_reconstructions.png``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import write_celeba_zip  # noqa: E402 (the tests' generator, after the path)

from nsvae.cli import main as nsvae  # noqa: E402


def run(argv: list[str]) -> None:
    code = nsvae(argv)
    if code:
        raise SystemExit(code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--out", type=Path, default=Path("runs/celeba-format"))
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    archive = write_celeba_zip(args.out / "img_align_celeba.zip", num=args.images)
    run_dir = args.out / "run"
    run(
        [
            "train",
            "--data",
            "images",
            "--data-path",
            str(archive),
            "--data-root",
            str(args.out / "cache"),
            "--steps",
            str(args.steps),
            "--log-every",
            "50",
            "--no-figures",
            "--run-dir",
            str(run_dir),
        ]
    )
    run(["report", str(run_dir), "--num-samples", "256"])
    for name in ("traversals.png", "reconstructions.png"):
        shutil.copy(run_dir / "figures" / name, ROOT / "docs" / f"celeba_format_{name}")


if __name__ == "__main__":
    main()
