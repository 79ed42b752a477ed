"""Provenance: every run and evaluation names the code and the CPU that made it."""

from __future__ import annotations

import shutil
import subprocess

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
    assert cpu_description(tmp_path / "missing") == f"unknown CPU (no {tmp_path / 'missing'})"


def test_this_machines_cpu_lists_only_known_flags():
    name, _, flags = cpu_description().partition("; ISA: ")
    assert name
    assert set(flags.split()) <= set(ISA_FLAGS) | {"none", "listed"}


def _git(folder, *arguments):
    subprocess.run(["git", "-C", str(folder), *arguments], check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_commit_of_a_source_checkout_is_recorded_and_dirt_is_marked(tmp_path):
    package = tmp_path / "repo" / "src" / "nsvae"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    assert code_commit(package) is None  # not a git checkout
    _git(tmp_path / "repo", "init", "-q")
    _git(tmp_path / "repo", "add", ".")
    _git(tmp_path / "repo", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = subprocess.run(
        ["git", "-C", str(package), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert code_commit(package) == head[:12]
    (package / "__init__.py").write_text("changed = True\n")
    assert code_commit(package) == head[:12] + "-dirty"


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_an_installed_copy_inside_another_repository_names_no_commit(tmp_path):
    package = tmp_path / "project" / ".venv" / "lib" / "site-packages" / "nsvae"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    _git(tmp_path / "project", "init", "-q")
    assert code_commit(package) is None  # the project's commit is not nsvae's


def test_versions_name_the_cpu_and_leave_out_an_unknown_commit(monkeypatch):
    import nsvae.provenance

    monkeypatch.setattr(nsvae.provenance, "code_commit", lambda: None)
    found = versions()
    assert found["cpu"] == cpu_description()
    assert "nsvae_commit" not in found
    assert {"nsvae", "python", "platform", "numpy", "scipy", "scikit-learn", "torch"} <= set(found)
