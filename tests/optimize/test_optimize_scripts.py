"""The measurement scripts behind docs/optimize.md run end to end and report what they claim."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end to end: real commands, subprocesses or whole runs

ROOT = Path(__file__).resolve().parents[2]


def run_script(name: str, argv: list[str], capsys, monkeypatch) -> str:
    monkeypatch.setattr("sys.argv", [name, *argv])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "scripts" / name), run_name="__main__")
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_flow_reliability_reports_what_dis_gets_wrong_on_ambush(sintel_root, capsys, monkeypatch):
    out = run_script("flow_reliability.py", ["--root", str(sintel_root), "--pair", "ambush_4:4"], capsys, monkeypatch)
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("|")][2:]
    assert [row[1].strip() for row in rows] == ["dis", "farneback", "dis at full size", "dis & farneback within 1 px"]
    trusted = {row[1].strip(): float(row[4].strip(" %")) for row in rows}
    wrong = {row[1].strip(): float(row[5].strip(" %")) for row in rows}
    assert wrong["dis"] > 90 and trusted["dis"] > 15  # docs/optimize.md: 25 % trusted, all of it wrong
    assert trusted["dis & farneback within 1 px"] < 0.25 * trusted["dis"]


def test_optimize_convergence_runs_a_variant_and_writes_its_grid(sintel_root, styles_dir, tmp_path, capsys, monkeypatch):
    # Tiny and cheap: 48 px, 2 + 1 iterations, two frames with one ground-truth pair.
    out = run_script("optimize_convergence.py", [
        "--root", str(sintel_root), "--scene", "ambush_4", "--first", "4", "--count", "2", "--max-side", "48",
        "--style", str(styles_dir / "starry_night.jpg"), "--save", str(tmp_path),
        "--variant", "tiny:iterations=2,iterations_warm=1,line_search=none",
    ], capsys, monkeypatch)
    rows = [line for line in out.splitlines() if line.startswith("| tiny")]
    assert [row.split("|")[2].strip() for row in rows] == ["off", "on"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-off.png", "tiny-on.png"]
