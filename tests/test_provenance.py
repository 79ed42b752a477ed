"""Provenance: every run and evaluation names the code and the CPU that made it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from nsvae.provenance import ISA_FLAGS, code_commit, cpu_description, versions

CPUINFO = """processor\t: 0
model name\t: Example CPU @ 2.00GHz
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile amx_bf16 amx_int8

processor\t: 1
model name\t: Example CPU @ 2.00GHz
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile amx_bf16 amx_int8
"""


def test_the_cpu_is_named_with_the_instruction_sets_that_decide_its_kernels(tmp_path):
    (tmp_path / "cpuinfo").write_text(CPUINFO)
    assert cpu_description(tmp_path / "cpuinfo") == (
        "Example CPU @ 2.00GHz; ISA: avx2 avx512f avx512_bf16 amx_tile amx_bf16"
    )
    (tmp_path / "old").write_text("model name\t: Old CPU\nflags\t\t: fpu sse2\n")
    assert cpu_description(tmp_path / "old") == "Old CPU; ISA: none listed"
    missing = cpu_description(tmp_path / "missing")  # macOS, Windows
    assert missing.endswith(f"; ISA: not read (no {tmp_path / 'missing'})")


ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics sve sve2 bf16 i8mm
CPU implementer\t: 0x41
CPU part\t: 0xd4f
"""


def test_an_arm_cpu_is_named_by_implementer_and_part_with_its_features(tmp_path):
    (tmp_path / "cpuinfo").write_text(ARM_CPUINFO)
    assert cpu_description(tmp_path / "cpuinfo") == (
        "ARM implementer 0x41 part 0xd4f; ISA: asimd sve sve2 bf16 i8mm"
    )


def test_this_linux_machines_cpu_has_a_name():
    if not Path("/proc/cpuinfo").is_file():
        pytest.skip("no /proc/cpuinfo: not Linux")
    name, _, flags = cpu_description().partition("; ISA: ")
    assert name and not name.startswith("unknown CPU")
    assert set(flags.split()) <= set(ISA_FLAGS) or flags == "none listed"


def _git(folder, *arguments):
    quiet = ["-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null"]
    subprocess.run(["git", "-C", str(folder), *quiet, *arguments], check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_commit_of_a_source_checkout_is_recorded_and_source_changes_mark_it(tmp_path):
    repo = tmp_path / "repo"
    package = repo / "src" / "nsvae"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (repo / "README.md").write_text("results\n")
    assert code_commit(package) is None  # not a git checkout
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert code_commit(package) == head[:12]
    (repo / "README.md").write_text("new results\n")  # outside nsvae's source: still clean
    assert code_commit(package) == head[:12]
    (package / "new.py").write_text("")  # a new source file: dirty
    assert code_commit(package) == head[:12] + "-dirty"
    (package / "new.py").unlink()
    (package / "__init__.py").write_text("changed = True\n")
    assert code_commit(package) == head[:12] + "-dirty"


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_an_installed_copy_inside_another_repository_names_no_commit(tmp_path):
    package = tmp_path / "project" / ".venv" / "lib" / "site-packages" / "nsvae"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    _git(tmp_path / "project", "init", "-q")
    assert code_commit(package) is None  # the project's commit is not nsvae's


def test_versions_name_the_cpu_and_the_commit_and_leave_out_an_unknown_commit(monkeypatch):
    import nsvae.provenance

    monkeypatch.setattr(nsvae.provenance, "code_commit", lambda: "0123456789ab-dirty")
    found = versions()
    assert found["nsvae_commit"] == "0123456789ab-dirty"
    assert found["cpu"] == cpu_description()
    assert found["cpu_capability"]  # torch's dispatch level: AVX512, AVX2, DEFAULT, ...
    assert {"nsvae", "python", "platform", "numpy", "scipy", "scikit-learn", "torch"} <= set(found)
    monkeypatch.setattr(nsvae.provenance, "code_commit", lambda: None)
    assert "nsvae_commit" not in versions()
