"""Training draws side by side, and the demo's order statements checked against the numbers.

Fixture tests build a small leaderboard and three draws' lmms-eval results files by hand; the
committed-text test reads ``results/demo/leaderboard/README.md`` and checks every order it states
against ``results/demo/leaderboard/leaderboard.csv`` and ``results/organism/draws.csv``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from lmms_sttm.demo import findings, spread_table
from lmms_sttm.organism.claims import claimed_orders
from lmms_sttm.organism.draws import collect, read_spread, summarise, typical_draw, write_spread

ROOT = Path(__file__).resolve().parents[2]
FAMS = ("ret_insert1", "ord_insert1", "cnt_insert1")
RUNS = [
    ("none", "pretrained=w,method=none"),
    ("tome_budget50", "pretrained=w,method=tome,budget=50"),
    ("pool_budget50", "pretrained=w,method=pool,budget=50"),
    ("sttm_exact50", "pretrained=w,method=sttm,budget_mode=exact,retention=0.5"),
    ("fastv_budget50", "pretrained=w,method=fastv,budget=50"),
]
#: tag -> (method, setting, demo acc, 95% low, 95% high, R.NV)
BOARD = {
    "none": ("none", "default", 100.0, 100.0, 100.0, ""),
    "tome_budget50": ("tome", "budget=50", 95.0, 90.0, 100.0, "50.0"),
    "pool_budget50": ("pool", "budget=50", 85.0, 75.0, 95.0, "51.0"),
    "sttm_exact50": ("sttm", "budget_mode=exact,retention=0.5", 60.0, 50.0, 70.0, "49.9"),
    "fastv_budget50": ("fastv", "budget=50", 40.0, 30.0, 49.0, "50.0"),
}
#: tag -> per-draw held-out accuracy (seeds 0, 1, 2), families ret/ord/cnt get acc - 1, acc, acc + 1
DRAWS = {
    "none": (99.0, 100.0, 98.0),
    "tome_budget50": (96.0, 94.0, 97.0),
    "pool_budget50": (90.0, 93.0, 88.0),
    "sttm_exact50": (70.0, 55.0, 80.0),
    "fastv_budget50": (60.0, 85.0, 50.0),
}


def write_fixture(tmp: Path) -> tuple[Path, Path]:
    """``(leaderboard.csv, draws folder)`` with the numbers above."""
    board = tmp / "leaderboard.csv"
    with board.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "setting", "avg_acc", "avg_acc_ci95_low", "avg_acc_ci95_high", "r_nv", "r_acc",
                    "r_ttft"])  # fmt: skip
        for method, setting, acc, low, high, r_nv in BOARD.values():
            w.writerow([method, setting, acc, low, high, r_nv, acc, 50])
    for tag, accs in DRAWS.items():
        for seed, acc in enumerate(accs):
            res = {
                "sttm_acc,none": acc,
                **{f"acc_task_type={f},none": acc - 1 + i for i, f in enumerate(FAMS)},
            }
            path = tmp / "draws" / f"seed_{seed}" / "runs" / tag / "ckpt" / "20261207_000000_results.json"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps({"results": {"vnbench_sttm": res}}))
    return board, tmp / "draws"


def test_draws_are_summarised_per_tag_and_family_with_mean_and_range(tmp_path):
    _, draws = write_fixture(tmp_path)
    rows = summarise(collect(draws))
    by = {(r["tag"], r["family"]): r for r in rows}
    assert len(rows) == len(DRAWS) * 4
    sttm = by[("sttm_exact50", "all")]
    assert sttm["draws"] == {0: 70.0, 1: 55.0, 2: 80.0}
    assert sttm["mean"] == pytest.approx((70 + 55 + 80) / 3) and (sttm["min"], sttm["max"]) == (55.0, 80.0)
    cnt = by[("fastv_budget50", "cnt_insert1")]
    assert cnt["draws"] == {0: 61.0, 1: 86.0, 2: 51.0} and (cnt["min"], cnt["max"]) == (51.0, 86.0)
    write_spread(rows, tmp_path / "out")
    back = read_spread(tmp_path / "out" / "draws.csv")
    assert back[("sttm_exact50", "all")]["draws"] == {0: 70.0, 1: 55.0, 2: 80.0}
    assert back[("pool_budget50", "ord_insert1")]["mean"] == pytest.approx((90 + 93 + 88) / 3, abs=0.005)
    assert (
        "| sttm_exact50 | all | 70.0 | 55.0 | 80.0 | 68.3 | 55.0–80.0 |"
        in (tmp_path / "out" / "draws.md").read_text()
    )


def test_typical_draw_is_the_one_closest_to_the_means(tmp_path):
    _, draws = write_fixture(tmp_path)
    rows = summarise(collect(draws))
    # worked by hand from DRAWS, squared distances to the row means (99, 95.67, 90.33, 68.33, 65):
    # seed 0: 0 + 0.11 + 0.11 + 2.78 + 25 = 28.0; seed 1: 1 + 2.78 + 7.11 + 177.8 + 400 = 588.7;
    # seed 2: 1 + 1.78 + 5.44 + 136.1 + 225 = 369.3
    assert typical_draw(rows) == 0
    flipped = [{**r, "draws": {0: r["draws"][1], 1: r["draws"][0], 2: r["draws"][2]}} for r in rows]
    assert typical_draw(flipped) == 1
    assert typical_draw([]) is None


def test_a_draw_missing_a_run_leaves_that_run_out(tmp_path):
    _, draws = write_fixture(tmp_path)
    for p in (draws / "seed_1" / "runs" / "pool_budget50").rglob("*.json"):
        p.unlink()
    tags = {r["tag"] for r in summarise(collect(draws))}
    assert "pool_budget50" not in tags and "tome_budget50" in tags


def test_findings_state_exactly_the_orders_beyond_intervals_and_draw_spread(tmp_path):
    board, draws = write_fixture(tmp_path)
    rows = summarise(collect(draws))
    write_spread(rows, tmp_path)
    text = findings(board, RUNS, read_spread(tmp_path / "draws.csv"))
    # worked by hand from BOARD and DRAWS: tome/pool overlap in their intervals; sttm/fastv have
    # disjoint intervals (50 > 49) but fastv's best draw (85) beats sttm's worst (55)
    want = {("tome_budget50", "sttm_exact50"), ("tome_budget50", "fastv_budget50"),
            ("pool_budget50", "sttm_exact50"), ("pool_budget50", "fastv_budget50")}  # fmt: skip
    assert set(claimed_orders(text)) == want and len(claimed_orders(text)) == len(want)
    # the band lists its rows in tag order, not ranked by this run's accuracy
    band = text[text.index("Keeping about 50%") :]
    order = [band.index(m) for m in ("fastv [", "pool [", "sttm [", "tome [")]
    assert order == sorted(order)


def test_findings_without_draws_state_no_order(tmp_path):
    board, _ = write_fixture(tmp_path)
    text = findings(board, RUNS, {})
    assert claimed_orders(text) == [] and "no order between rows is stated" in text


def test_spread_table_shows_each_rows_draws_next_to_its_interval(tmp_path):
    board, draws = write_fixture(tmp_path)
    write_spread(summarise(collect(draws)), tmp_path)
    table = spread_table(RUNS, board, read_spread(tmp_path / "draws.csv"))
    line = next(x for x in table.splitlines() if x.startswith("| fastv_budget50 |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1] == "40.0 [30.0, 49.0]" and cells[2] == "65.0 (50.0–85.0)"
    assert cells[3:6] == ["60.0", "85.0", "50.0"] and cells[6] == "64.0 (49.0–84.0)"  # ret: acc - 1
    assert spread_table(RUNS, board, {}) == ""


def committed_rows() -> tuple[dict, dict]:
    board = ROOT / "results" / "demo" / "leaderboard" / "leaderboard.csv"
    with board.open(newline="") as f:
        rows = {(r["method"], r["setting"]): r for r in csv.DictReader(f)}
    draws_csv = ROOT / "results" / "organism" / "draws.csv"
    return rows, (read_spread(draws_csv) if draws_csv.is_file() else {})


def test_committed_demo_text_states_only_orders_that_hold_on_every_draw():
    from lmms_sttm.demo import demo_runs
    from lmms_sttm.organism.claims import row_key

    text = (ROOT / "results" / "demo" / "leaderboard" / "README.md").read_text()
    board, spread = committed_rows()
    args = dict(demo_runs())
    claims = claimed_orders(text)
    if not spread:
        assert claims == [], "orders stated without a committed held-out evaluation of several draws"
    for x, y in claims:
        bx, by = board[row_key(args[x])], board[row_key(args[y])]
        assert float(bx["avg_acc_ci95_low"]) > float(by["avg_acc_ci95_high"]), (x, y)
        dx, dy = spread[(x, "all")]["draws"], spread[(y, "all")]["draws"]
        assert len(dx) >= 3 and set(dx) == set(dy)
        for seed in dx:  # on every draw, by more than the spread: x's worst above y's best
            assert dx[seed] > dy[seed], (x, y, seed)
        assert min(dx.values()) > max(dy.values()), (x, y)


def test_committed_spread_is_the_draws_results_and_the_demo_organism_is_the_typical_draw():
    """``results/organism/draws.csv`` is what the committed per-draw results files give (every demo
    row on at least 3 draws), and ``lmms_sttm/organism/weights`` is byte for byte the checkpoint of
    the draw closest to the draws' means."""
    from lmms_sttm.demo import demo_runs

    draws = ROOT / "results" / "organism" / "draws"
    rows = summarise(collect(draws))
    committed = read_spread(ROOT / "results" / "organism" / "draws.csv")
    assert {(r["tag"], r["family"]) for r in rows} == set(committed)
    for r in rows:
        assert committed[(r["tag"], r["family"])]["draws"] == pytest.approx(r["draws"], abs=0.051)
    assert {tag for tag, _ in demo_runs()} <= {r["tag"] for r in rows}
    assert all(len(r["draws"]) >= 3 for r in rows)
    seed = typical_draw(rows)
    weights = ROOT / "lmms_sttm" / "organism" / "weights"
    for name in ("model.safetensors", "training.json"):
        assert (weights / name).read_bytes() == (draws / "checkpoints" / f"seed_{seed}" / name).read_bytes()


def test_order_agreement_counts_pairs_kept_flipped_and_undecided_by_hand():
    from lmms_sttm.organism.draws import order_agreement

    per = {  # three draws, runs a b c (all-families accuracy)
        0: {"a": {"all": 90.0}, "b": {"all": 80.0}, "c": {"all": 70.0}},
        1: {"a": {"all": 85.0}, "b": {"all": 84.0}, "c": {"all": 90.0}},
        2: {"a": {"all": 95.0}, "b": {"all": 60.0}, "c": {"all": 75.0}},
    }
    # a-b: +10, +1, +35 -> same at margin 0, undecided at margin 2 (draw 1 within 2 points)
    # a-c: +20, -5, +20 -> flipped; b-c: +10, -6, -15 -> flipped
    got = order_agreement(per, ["a", "b", "c"], margin=0.0)
    assert (got["pairs"], got["same"], got["flipped"], got["undecided"]) == (3, 1, 2, 0)
    got = order_agreement(per, ["a", "b", "c"], margin=2.0)
    assert (got["same"], got["flipped"], got["undecided"]) == (0, 2, 1)
    assert got["spread"] == {"a": 10.0, "b": 24.0, "c": 20.0} and got["mean_spread"] == 18.0
