"""What several test modules share: the repository's root and headless Chromium.

``pytest`` puts ``tests/`` on the import path (``pythonpath`` in ``pyproject.toml``), so any
test module, at any depth, imports these as ``from helpers import ...``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)"
)


def chromium(*args, profile) -> subprocess.CompletedProcess:
    """Run headless Chromium with ``args``, its profile in the folder ``profile``, offline."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--hide-scrollbars",
        "--virtual-time-budget=10000",
    ]
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=True
    )


def image_sources(page: str) -> list[str]:
    """The ``src`` of every ``<img>`` of an HTML page."""
    return re.findall(r'<img src="([^"]*)"', page)


def nsvae_command(*args) -> list[str]:
    """The command line of ``nsvae ARGS`` run as a process of its own (``python -m nsvae.cli``),
    each argument as text."""
    return [sys.executable, "-m", "nsvae.cli", *map(str, args)]
