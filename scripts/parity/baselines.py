"""The 2024 baselines against the authors' code: ToMe, DyCoke stage 1, DyCoke stage 2.

For every synthetic video (:mod:`videos`: 6 layouts x ``--videos`` seeds, alternating similarity)
and budget 50 / 30 (the authors' settings, the specs' ``budgets`` in ``lmms_sttm/methods``: ToMe prunes 0.5 /
0.7, DyCoke 0.7 / 0.925 of each pruned frame):

- ToMe: the authors' ``tome_per_video`` against ``lmms_sttm.merging.tome.tome_video(prune=)``:
  the same rows in the same order (their token index = our merge destination per row) and the
  same merged features; ``reordered``: the same rows and features with some rows swapped.
- DyCoke stage 1: the authors' ``dycoke_ttm`` against ``lmms_sttm.merging.dycoke.dycoke_stage1``
  with the authors' per-frame counts: the same kept tokens in the same order.
- DyCoke stage 2: 8 decode steps of seeded attention rows (28 heads, 14 system tokens, the video
  after stage 1, 20 question tokens, the generated tokens): the authors'
  ``PrunableDynamicCache.dycoke_pruning`` on a fresh cache per step (as their forward makes it)
  against ``KvPruning.pruned_range`` + ``keep_entries`` (``dycoke_kv=authors``): the same kept
  cache entries at every step.

A DyCoke case whose decisions met an exact tie (two equal similarities or scores among the kept
ones or at the cut, where the order ``topk`` returns is implementation-defined) is counted as
``tie``; a ToMe case with the same rows and destinations but some rows in another order as
``reordered`` (the order of later rounds' unmerged rows follows their similarity ranking). FastV is not
driven here: the authors' FastV is a block inside their model's forward, not a function that
can be imported on its own (its rule is pinned by the test suite). Prints JSON.

    .venv/bin/python scripts/parity/baselines.py --authors-dir DIR [--videos 20]
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import authors  # noqa: E402
from videos import LAYOUTS, video  # noqa: E402

from lmms_sttm.engine.kv_pruning import MODES, keep_entries  # noqa: E402
from lmms_sttm.merging.dycoke import dycoke_stage1, prune_ratio_counts  # noqa: E402
from lmms_sttm.merging.tome import tome_video  # noqa: E402
from lmms_sttm.methods import registry  # noqa: E402

#: budget -> (ToMe, DyCoke) prune, as the method specs declare the authors' settings
BUDGETS = {
    b: (registry.get("tome").budgets[b]["prune"], registry.get("dycoke").budgets[b]["prune"])
    for b in (50, 30)
}
SIMILARITY = ("high", "mid", "low")
SYSTEM, QUESTION, HEADS, STEPS = 14, 20, 28, 8


def tome_case(their_tome, x: torch.Tensor, grid, prune: float) -> tuple[str, float]:
    """``same`` (rows, order, destinations), ``reordered`` (the same rows and features, some rows
    in another order: equal similarities, whose ``argsort`` order is implementation-defined) or
    ``differ``; and the max feature difference of the rows matched by destination."""
    t, h, w = grid
    feats, dest = their_tome.tome_per_video(x.view(t, h, w, -1).permute(0, 3, 1, 2), prune)
    plan = tome_video(x, grid, prune=prune)
    ours = plan.position_index.cpu()
    if plan.num_kept != feats.shape[0] or not torch.equal(ours.sort().values, dest.cpu().sort().values):
        return "differ", float("inf")
    by_dest = feats[torch.argsort(dest.cpu())][torch.argsort(torch.argsort(ours))]
    diff = float((plan.features - by_dest).abs().max())
    return ("same" if torch.equal(ours, dest.cpu()) else "reordered"), diff


def has_tie(values: torch.Tensor, k: int) -> bool:
    """Whether two of the k+1 smallest of ``values`` are equal: a tie inside the kept set (its
    order) or at the cut (its membership)."""
    s = values.sort().values[: k + 1]
    return bool((s[1:] == s[:-1]).any())


def dycoke1_case(their, x: torch.Tensor, grid, prune: float) -> tuple[str, torch.Tensor]:
    """``same`` / ``tie`` / ``differ`` and the kept share of the authors' result."""
    t, h, w = grid
    _, idx = their.dycoke_ttm(x, t, prune)
    plan = dycoke_stage1(x, grid, prune_ratio_counts(t, h * w, prune))
    if torch.equal(plan.rep_index.cpu(), idx.cpu()):
        return "same", idx
    frames = x.view(t, h * w, -1)
    k = int((1 - prune) * h * w)  # the authors' per-frame count
    sims = [F.cosine_similarity(frames[i], frames[i + 1], dim=1) for i in range(0, t - 1, 2)]
    sims += [F.cosine_similarity(frames[i], frames[i + 2], dim=1) for i in range(0, t - 4, 4)]
    return ("tie" if any(has_tie(s, k) for s in sims) else "differ"), idx


def dycoke2_case(cache_cls, kept_video: int, original: int, seed: int) -> str:
    """``same`` / ``tie`` / ``differ`` over :data:`STEPS` decode steps."""
    gen = torch.Generator().manual_seed(seed)
    mode = MODES["authors"]
    for step in range(STEPS):
        total = SYSTEM + kept_video + QUESTION + step + 1
        attn = torch.softmax(torch.randn(1, HEADS, 1, total, generator=gen) * 3, dim=-1)
        config = SimpleNamespace(image_token_start_index=SYSTEM, image_token_length=original,
                                 dycoke_radio=mode.prune, seq_length_with_past=total)  # fmt: skip
        cache = cache_cls()
        cache.dycoke_pruning((None, attn), mode.layer, config)
        theirs = sorted(cache.kv_cache)
        stop, base = mode.pruned_range((SYSTEM, SYSTEM + kept_video), total, original)
        scores = attn[0, :, -1].mean(0)
        ours = keep_entries(scores[SYSTEM:stop], SYSTEM, total, mode.keep_count(base)).tolist()
        if ours != theirs:
            window = attn[0].mean(0)[-1][SYSTEM : SYSTEM + original]
            n = window.numel()
            return "tie" if has_tie(-window, int(n * (1 - mode.prune))) else "differ"
    return "same"


def main(argv=None) -> int:
    p = authors.parser(__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=20, help="seeded videos per layout and budget")
    p.add_argument("--channels", type=int, default=64)
    args = p.parse_args(argv)
    root = authors.root_from(args)
    their_tome = authors.import_module(root, "token_merging_utils.tome_token_merger")
    their_dycoke = authors.import_module(root, "token_merging_utils.dycoke_merger")
    cache_cls = authors.import_dycoke_cache(root)
    torch.set_num_threads(1)
    rows = []
    for name, t, h, w in LAYOUTS:
        for budget, (tome_prune, dycoke_prune) in BUDGETS.items():
            tally = {"tome": {}, "tome_max_feature_diff": 0.0, "dycoke1": {}, "dycoke2": {}}
            for seed in range(args.videos):
                x = video(t, h, w, args.channels, seed, SIMILARITY[seed % 3]).reshape(-1, args.channels)
                outcome, diff = tome_case(their_tome, x, (t, h, w), tome_prune)
                tally["tome"][outcome] = tally["tome"].get(outcome, 0) + 1
                tally["tome_max_feature_diff"] = max(tally["tome_max_feature_diff"], diff)
                outcome, idx = dycoke1_case(their_dycoke, x, (t, h, w), dycoke_prune)
                tally["dycoke1"][outcome] = tally["dycoke1"].get(outcome, 0) + 1
                outcome = dycoke2_case(cache_cls, idx.numel(), t * h * w, seed)
                tally["dycoke2"][outcome] = tally["dycoke2"].get(outcome, 0) + 1
            rows.append({"layout": f"{name} {t}x{h}x{w}", "budget": budget, "videos": args.videos, **tally})
    authors.emit({"driver": "baselines", "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
