"""The committed results stay reproducible: each exported reproduction model, evaluated again,
scores the MIG that its ``eval.json`` records (issue 13: within 0.01), and the READMEs' study
tables are what ``results/studies/table.py`` prints from the committed ``results.csv``."""

from __future__ import annotations

import random
import shutil

import pytest
from helpers import REPOSITORY

from nsvae.metrics.evaluate import evaluate_run
from nsvae.metrics.results import read_evaluation

RESULTS = REPOSITORY / "results"
REPRODUCTION = RESULTS / "reproduction"
EXPORTED = sorted(path.parent.name for path in REPRODUCTION.glob("*/model.safetensors"))


def test_both_update_rules_are_committed_as_models():
    assert EXPORTED == ["joint-update-step110000", "seed-update-step110000"]


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPORTED)
def test_a_committed_model_scores_its_committed_mig(name, tmp_path):
    folder = shutil.copytree(REPRODUCTION / name, tmp_path / name)
    stored = next(
        entry
        for entry in read_evaluation(folder / "eval.json")
        if entry["metric"] == "mig" and entry["representation"] == "mean" and not entry["fast"]
    )
    again = evaluate_run(folder, metrics="mig", seed=stored["seed"], save=False)
    assert again["step"] == 110_000
    assert abs(again["metrics"]["mig"]["discrete_mig"] - stored["values"]["discrete_mig"]) <= 0.01
    assert again["metrics"]["mig"]["captured_by"] == stored["values"]["captured_by"]


STUDY_V2 = RESULTS / "studies" / "cpu-study-v2"
KEPT = sorted(path.parent.name for path in STUDY_V2.glob("trials/*/model.safetensors"))


def test_every_committed_trial_of_the_decisive_study_keeps_its_model():
    trials = sorted(path.name for path in (STUDY_V2 / "trials").iterdir())
    assert trials and trials == KEPT


@pytest.mark.slow
@pytest.mark.parametrize("name", random.Random(2026).sample(KEPT, min(3, len(KEPT))))
def test_a_kept_study_model_rescores_its_committed_mig(name, tmp_path):
    """Three kept trials, drawn at random with a fixed seed, score their committed MIG again."""
    folder = shutil.copytree(STUDY_V2 / "trials" / name, tmp_path / name)
    assert not (folder / "checkpoints").exists()  # the weights alone, as committed
    stored = next(
        entry
        for entry in read_evaluation(folder / "eval.json")
        if entry["metric"] == "mig" and not entry["fast"]
    )
    again = evaluate_run(folder, metrics="mig", seed=stored["seed"], save=False)
    assert again["step"] == 50_000
    assert abs(again["metrics"]["mig"]["discrete_mig"] - stored["values"]["discrete_mig"]) <= 0.01


def _script(name: str):
    """results/studies/NAME.py, loaded from its file (a script, not part of nsvae)."""
    import importlib.util

    path = RESULTS / "studies" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"study_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _study_tables():
    return _script("table")


def test_collect_py_copies_each_new_finished_trial_once_without_checkpoints(tmp_path):
    from nsvae.errors import RunLockedError
    from nsvae.files import file_lock
    from nsvae.sweep.rescore import rescore_study

    script = _script("collect")
    collect = script.collect
    name = KEPT[0]
    source, target = tmp_path / "study", tmp_path / "results"
    shutil.copytree(STUDY_V2 / "trials" / name, source / "trials" / name)
    (source / "trials" / name / "checkpoints").mkdir()  # what a trial folder also holds
    shutil.copy2(STUDY_V2 / "study.toml", source / "study.toml")

    target.mkdir()
    with (
        file_lock(target / ".lock", exclusive=False),  # a rescore at work on the target
        pytest.raises(RunLockedError, match="in use"),
    ):
        collect(source, target)
    assert not (target / "trials").exists()

    names, report = collect(source, target)
    assert names == [name] and report.is_file()
    copied = target / "trials" / name
    assert sorted(path.name for path in copied.iterdir()) == sorted(script.KEPT)
    assert not (copied / "checkpoints").exists()
    rows = (target / "results.csv").read_text().splitlines()
    assert sum(line.startswith(name + ",") for line in rows) == 1
    (copied / "eval.json").write_text((copied / "eval.json").read_text() + " ")  # rescored there
    assert collect(source, target)[0] == []  # a trial already there is left as it is
    assert (copied / "eval.json").read_text().endswith(" ")
    with (
        file_lock(target / ".lock"),  # a collect at work: a rescore is refused, saying so
        pytest.raises(RunLockedError, match="in use by a sweep or a collect"),
    ):
        rescore_study(target, "mig")


def test_collect_py_says_in_one_line_what_is_wrong_and_what_it_copied(tmp_path, capsys):
    from nsvae.files import file_lock

    main = _script("collect").main
    source, target = tmp_path / "study", tmp_path / "results"
    with pytest.raises(SystemExit) as stop:
        main([str(source), str(target)])
    assert stop.value.code == 2
    assert "holds no study.toml" in capsys.readouterr().err.splitlines()[-1]
    shutil.copytree(STUDY_V2 / "trials" / KEPT[0], source / "trials" / KEPT[0])
    shutil.copy2(STUDY_V2 / "study.toml", source / "study.toml")
    with pytest.raises(SystemExit) as stop:
        main([str(source), str(tmp_path / "missing" / "results")])
    assert stop.value.code == 2
    assert "is not a folder" in capsys.readouterr().err
    target.mkdir()
    with file_lock(target / ".lock"), pytest.raises(SystemExit) as stop:
        main([str(source), str(target)])
    assert str(stop.value.code).startswith("collect.py: error: ")
    assert "in use by a rescore or another collect" in str(stop.value.code)
    main([str(source), str(target)])
    assert capsys.readouterr().out == (
        f"1 new finished trials copied; report: {target / 'report.html'}\n"
    )
    with pytest.raises(SystemExit) as stop:
        main([str(source), str(target), "vae"])  # KEPT[0] is not a VAE trial
    assert "no finished trial of setting 'vae'" in str(stop.value.code)


def test_the_readmes_study_tables_are_what_table_py_prints_from_the_committed_results():
    tables, study = _study_tables(), RESULTS / "studies" / "cpu-study"
    results_readme = (RESULTS / "README.md").read_text(encoding="utf-8")
    assert tables.block(results_readme, "cpu-study settings") == tables.table(study, "vae")
    assert tables.block(results_readme, "cpu-study trials") == tables.trials_table(study)
    readme = (RESULTS.parent / "README.md").read_text(encoding="utf-8")
    assert tables.block(readme, "cpu-study-v2 settings") == tables.table(STUDY_V2, "vae")


def test_the_decisive_studys_trials_table_lists_every_committed_trial_as_table_py_prints_it():
    tables = _study_tables()
    table = tables.trials_table(STUDY_V2)
    assert table.split("\n\n")[0].count("\n") == len(KEPT) + 1  # header, rule, a row per trial
    readme = (RESULTS / "README.md").read_text(encoding="utf-8")
    assert tables.block(readme, "cpu-study-v2 trials") == table
    assert tables.block(readme, "cpu-study-v2 settings") == tables.table(STUDY_V2, "vae")


def test_the_decisive_studys_pid_table_lists_every_committed_trial_as_table_py_prints_it():
    tables = _study_tables()
    table = tables.pid_table(STUDY_V2)
    assert table.count("\n") == len(KEPT) + 1  # every committed trial is scored with UniBound
    readme = (RESULTS / "README.md").read_text(encoding="utf-8")
    assert tables.block(readme, "cpu-study-v2 pid") == table
    for row in table.splitlines()[2:]:  # shares of H(y); each part's lower bound <= its upper
        unibound, *parts = row.strip(" |").split(" | ")[1:]
        assert 0 <= float(unibound) <= 1
        for cell in parts:
            lower, upper = (float(v) for v in cell.split("-", 1))
            assert 0 <= lower <= upper <= 1


def test_the_pairs_table_compares_every_pair_once_each_way_as_its_reference_table_does():
    from nsvae.sweep.report import compare_with

    tables = _study_tables()
    table = tables.pairs_table(STUDY_V2)
    readme = (RESULTS / "README.md").read_text(encoding="utf-8")
    assert tables.block(readme, "cpu-study-v2 pairs") == table
    done = tables.finished(STUDY_V2)
    columns = list(tables.present_columns(done))
    assert "unibound.unibound" in columns
    settings = list(dict.fromkeys(done["setting"]))
    rows = [
        row.removeprefix("| ").removesuffix(" |").split(" | ") for row in table.splitlines()[2:]
    ]
    assert [row[:2] for row in rows] == [
        [a, b] for i, a in enumerate(settings) for b in settings[i + 1 :]
    ]
    against = {  # each setting's reference table, computed once: cells by compared setting
        reference: {row[0]: row[2:] for row in compare_with(done, columns, reference).rows}
        for reference in settings
    }
    for a, b, seeds, *cells in rows:
        assert seeds == f"{(done['setting'] == a).sum()} v {(done['setting'] == b).sum()}"
        assert cells == against[b][a]
        for cell, other in zip(cells, against[a][b], strict=True):  # B's share is 1 - A's, same p
            if not cell:  # a metric without values for one of the two
                assert not other
                continue
            (share, p), (other_share, other_p) = (
                c.split(";")[0].split(" (p ") for c in (cell, other)
            )
            # each share is rounded to 2 decimals, so a share of ties (0.325 and 0.675 of 20
            # pairs) can print as 0.33 and 0.68: the two differ from 1 by at most 0.01
            assert abs(float(share) + float(other_share) - 1) <= 0.01 + 1e-9
            assert other_p == p


def test_table_py_replaces_the_table_between_the_start_and_end_lines_of_its_block():
    tables = _study_tables()
    start, end = tables.markers("study trials")
    assert (start, end) == (
        "<!-- table.py: start study trials -->",
        "<!-- table.py: end study trials -->",
    )
    text = tables.replace_block(
        f"intro\n\n{start}\n| old |\n|---|\n{end}\n\noutro\n",
        "| new |\n|---|\n| 1 |",
        "study trials",
    )
    assert text == f"intro\n\n{start}\n| new |\n|---|\n| 1 |\n{end}\n\noutro\n"
    assert tables.block(text, "study trials") == "| new |\n|---|\n| 1 |"
    empty = f"{start}\n{end}\n"  # nothing between: the table goes on lines of its own
    assert tables.replace_block(empty, "| x |\n", "study trials") == f"{start}\n| x |\n{end}\n"
    assert tables.replace_block(f"{start}\n| x |\n{end}\n", "", "study trials") == empty
    assert tables.block(empty, "study trials") == ""
    for broken in (
        "no markers\n",
        f"{end}\n{start}\n",
        f"{start}\n{start}\n{end}\n",
        f"{start} | old |\n{end}\n",
    ):
        with pytest.raises(ValueError, match="expected one|lines of their own"):
            tables.replace_block(broken, "| new |", "study trials")


def test_table_py_writes_each_block_of_each_readme_that_has_it_and_no_other(tmp_path):
    tables = _study_tables()
    main, results = tmp_path / "README.md", tmp_path / "results.md"
    trials, pid, other = (tables.markers(f"study {kind}") for kind in ("trials", "pid", "settings"))
    main.write_text("\n".join([*trials, *other, ""]))
    results.write_text("\n".join([trials[0], "| old |", trials[1], *pid, ""]))
    assert tables.write_tables("| a |", "study trials", (main, results)) == [main, results]
    assert tables.write_tables("| b |", "study pid", (main, results)) == [results]
    assert main.read_text() == "\n".join([trials[0], "| a |", trials[1], *other, ""])
    expected = [trials[0], "| a |", trials[1], pid[0], "| b |", pid[1], ""]
    assert results.read_text() == "\n".join(expected)
    with pytest.raises(ValueError, match="no README has"):  # another study's block: not written
        tables.write_tables("| c |", "another study trials", (main, results))
    before = main.read_text()
    results.write_text(f"{trials[0]}\n{trials[0]}\n{trials[1]}\n")  # a broken block in one
    with pytest.raises(ValueError, match="expected one"):  # ... and no README is written
        tables.write_tables("| d |", "study trials", (main, results))
    assert main.read_text() == before
