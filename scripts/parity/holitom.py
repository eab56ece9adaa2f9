"""HoliTom's outer stage against the authors' functions (cokeshao/HoliTom at e9b2972), on synthetic videos.

The authors' outer stage is a block of their LLaVA ``prepare_inputs_labels_for_multimodal``; its
steps are methods of ``LlavaMetaForCausalLM_holitom`` (``holitom/llava_arch.py``), which this
driver imports from the checkout and calls in the block's order: the frame similarity (their
``normalize`` + ``cosine_similarity``), ``select_static_windows``, the retention ``min(r / ((N -
saved) / N), 1)``, ``get_static_dynamic_features``, then per window
``merge_tokens_by_attention_density`` (dynamic tokens) and ``merge_tokens_by_density`` (static
tokens), whose returned positions name the kept tokens. Ours: ``lmms_sttm.merging.holitom
.holitom_outer``. Compared per case: the windows, the kept tokens (frame, position) and their
features (max abs difference, features matched by kept token).

Inputs: :mod:`videos` (6 layouts, 12-16 frames unless ``--layouts paper``, x ``--videos`` seeds,
``C`` channels, similarity mid / low / fair in turn: heavy, partial and little temporal merging), a
vision attention per frame (softmax of seeded logits). Settings: the authors'
published ``(RETAIN_RATIO, T)`` = (0.10, 0.65) and ``budget=30`` (0.30, 0.80), each with ``D = 0`` (the authors' default: every kept dynamic token by attention).
``D = 1`` (this package's default while the engine gives no vision attention to a stage) cannot
go through the authors' ``merge_tokens_by_attention_density``: for ``D > 0`` its
``pos.masked_select(mask.unsqueeze(-1))`` broadcasts ``[w, d]`` against ``[w, d, 1]`` and raises
(or, for ``w == d``, selects the wrong shape); the driver reports that and compares the ``D = 1``
dynamic tokens through the two functions that path calls, ``cluster_dpc_knn`` +
``merge_tokens_by_clustering`` on each frame's dynamic tokens.

Their DPC-kNN adds unseeded noise (``torch.rand * 1e-6``) to the densities: the driver runs their
code with torch seeds 0 and 1 to count the cases where their own kept set moves ("self_disagree"),
and once with the noise replaced by an index-ordered draw in the same range (``pinned.ordered_noise``:
equal densities ordered by index, the rule of this package's deterministic DPC-kNN). "same_kept"
compares ours with that run; "same_as_seed_0" with the seed-0 run.

Stubbed: ``llava.constants``, ``llava.mm_utils``, ``llava.utils`` (their file imports names from
them that the driven methods never use). Prints JSON.

    .venv/bin/python scripts/parity/holitom.py --authors-dir DIR [--videos 4] [--channels 64]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pinned_checkout import Pin, ordered_noise, stub_modules  # noqa: E402
from videos import LAYOUTS, video  # noqa: E402

from lmms_sttm.merging import holitom  # noqa: E402

PIN = Pin(
    repository="https://github.com/cokeshao/HoliTom",
    commit="e9b2972f6895c9e7d7fe74eb8c3a2ecaab8056e0",
    blobs={"holitom/llava_arch.py": "463b22c2bbba8c0569b35005913a969248f2bbfb"},
    env_var="LMMS_STTM_HOLITOM_DIR",
)
#: (RETAIN_RATIO, T): the authors' published 10% row and budget=30 here
SETTINGS = ((0.10, 0.65), (0.30, 0.80))
BETA, K = 0.6, 7
SIMILARITY = ("mid", "low", "fair")
#: the layouts of :mod:`videos` with fewer frames (``--layouts short``, the default: the sweep then
#: runs in minutes on a CPU); ``--layouts paper``: the paper's grids as they are
SHORT = (
    ("llava_video", 16, 13, 13),
    ("llava_ov", 16, 14, 14),
    ("qwen2vl_like", 16, 10, 14),
    ("qwen2vl_like_9x16", 12, 9, 16),
    ("odd_frames", 15, 14, 14),
    ("odd_tokens", 15, 13, 13),
)


def load(root: Path):
    stubbed = stub_modules(
        {
            "llava": {},
            "llava.constants": dict.fromkeys(
                (
                    "IGNORE_INDEX",
                    "IMAGE_TOKEN_INDEX",
                    "DEFAULT_IMAGE_PATCH_TOKEN",
                    "DEFAULT_IM_START_TOKEN",
                    "DEFAULT_IM_END_TOKEN",
                ),
                0,
            ),  # fmt: skip
            "llava.mm_utils": {"get_anyres_image_grid_shape": None},
            "llava.utils": {"rank0_print": lambda *a, **k: None, "rank_print": lambda *a, **k: None},
        }
    )
    module = PIN.load_file(root, "holitom/llava_arch.py", "holitom_authors.llava_arch")
    return type("Theirs", (module.LlavaMetaForCausalLM_holitom,), {})(), stubbed


def theirs_outer(their, x, attn, retain, tau, contextual, seed):
    """The authors' block on ``x [T, P, C]``: ``(windows, {original index: feature})``."""
    t, p, _ = x.shape
    normed = F.normalize(x, p=2, dim=-1)
    sim = F.cosine_similarity(normed[:-1], normed[1:], dim=-1)
    windows, saved = their.select_static_windows(sim, t, tau, 1024)
    r = min(retain / ((t * p - saved) / (t * p)), 1)
    static, dynamic, _, dyn_attn, static_pos, dyn_pos = their.get_static_dynamic_features(
        x, attn, windows, sim, tau
    )
    kept = {}
    torch.manual_seed(seed)
    for i, (a, b) in enumerate(windows):
        if contextual == 0:
            feat, pos = their.merge_tokens_by_attention_density(
                dynamic[i], dyn_attn[i], dyn_pos[i], r, 0.0, BETA, K
            )
        else:
            feat, pos = dpc_only(their, dynamic[i], dyn_pos[i], r)
        for f in range(feat.shape[0]):
            for j in range(feat.shape[1]):
                kept[(a + f) * p + int(pos[f, j])] = feat[f, j]
        if b > a and static[i].shape[0]:
            feat, pos = their.merge_tokens_by_density(static[i].unsqueeze(0), static_pos[i], r, BETA, K)
            for j in range(feat.shape[1]):
                kept[a * p + int(pos[0, j])] = feat[0, j]
    return [(int(a), int(b)) for a, b in windows], kept


def dpc_only(their, feat, pos, r):
    """``D = 1``: every kept dynamic token a DPC-kNN centre, through the two functions the authors'
    ``D > 0`` path calls (``cluster_dpc_knn``, ``merge_tokens_by_clustering``)."""
    w, d, c = feat.shape
    m = -(-d * r // 1)
    m = int(m)
    if d == 0 or m == 0:
        return feat[:, :0], pos[:, :0]
    centres, dist = their.cluster_dpc_knn(feat, m, k=min(K, m))
    centres = torch.sort(centres, dim=-1)[0]
    tokens = their.merge_tokens_by_clustering(feat, centres, dist, m, BETA)
    return tokens, torch.stack([pos[f][centres[f]] for f in range(w)])


def authors_contextual_path_raises(their) -> str:
    """Runs the authors' ``merge_tokens_by_attention_density`` with ``D = 1`` on a 2-frame window."""
    feat, attn = torch.randn(2, 5, 8), torch.rand(2, 5)
    pos = torch.arange(5).expand(2, -1)
    try:
        their.merge_tokens_by_attention_density(feat, attn, pos, 0.6, 1.0, BETA, K)
    except RuntimeError as e:
        return f"raises {type(e).__name__}: {str(e)[:120]}"
    return "ran"


def ours_outer(x, attn, retain, tau, contextual):
    t, p, c = x.shape
    s = holitom.OuterSettings(retain, tau=tau, beta=BETA, contextual=contextual, knn=K)
    plan = holitom.holitom_outer(x.reshape(-1, c), (t, p, 1), s, attn)
    sim = holitom.frame_similarity(x)
    windows, _ = holitom.select_windows(holitom.static_counts(sim > tau), 1024)
    return windows, {int(r): plan.features[i] for i, r in enumerate(plan.rep_index)}


def main() -> None:
    p = PIN.parser(__doc__.split("\n")[0])
    p.add_argument("--videos", type=int, default=4, help="seeds per layout (6 layouts)")
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--layouts", choices=("short", "paper"), default="short")
    args = p.parse_args()
    their, stubbed = load(PIN.root(args))
    torch.set_grad_enabled(False)
    rows = []
    layouts = SHORT if args.layouts == "short" else LAYOUTS
    for name, t, h, w in layouts:
        for seed in range(args.videos):
            x = video(t, h, w, args.channels, seed, SIMILARITY[seed % 3]).reshape(t, h * w, -1)
            logits = torch.randn(t, h * w, generator=torch.Generator().manual_seed(seed + 100)) * 2
            attn = torch.softmax(logits, dim=-1)
            print(f"{name} seed {seed}", file=sys.stderr, flush=True)
            for retain, tau in SETTINGS:
                for contextual in (0.0, 1.0):
                    wins, seeded = theirs_outer(their, x.clone(), attn, retain, tau, contextual, 0)
                    _, again = theirs_outer(their, x.clone(), attn, retain, tau, contextual, 1)
                    our_wins, ours = ours_outer(x, attn, retain, tau, contextual)
                    with ordered_noise():
                        _, ordered = theirs_outer(their, x.clone(), attn, retain, tau, contextual, 0)
                    same = set(ordered) == set(ours)
                    kept = ordered
                    diff = max((float((kept[k].float() - ours[k].float()).abs().max()) for k in kept if k in ours),
                               default=0.0)  # fmt: skip
                    rows.append({
                        "layout": name, "seed": seed, "retain": retain, "tau": tau, "D": contextual,
                        "tokens": t * h * w, "kept": len(kept), "same_windows": wins == our_wins,
                        "same_kept": same, "max_feature_diff": diff if same else None,
                        "self_disagree": set(seeded) != set(again), "same_as_seed_0": set(seeded) == set(ours),
                        "kept_symmetric_difference": len(set(kept) ^ set(ours)),
                    })  # fmt: skip
    summary = {
        "cases": len(rows),
        "videos": len(layouts) * args.videos,
        "layouts": [list(x) for x in layouts],
        "same_windows": sum(r["same_windows"] for r in rows),
        "same_kept": sum(r["same_kept"] for r in rows),
        "their_self_disagree": sum(r["self_disagree"] for r in rows),
        "differ": [r for r in rows if not r["same_kept"]],
        "same_as_seed_0": sum(r["same_as_seed_0"] for r in rows),
        "max_feature_diff": max((r["max_feature_diff"] or 0.0) for r in rows),
        "retained_share": {
            f"{retain}/{tau}/D={d}": round(
                sum(r["kept"] for r in rows if (r["retain"], r["tau"], r["D"]) == (retain, tau, d))
                / sum(r["tokens"] for r in rows if (r["retain"], r["tau"], r["D"]) == (retain, tau, d)),
                4,
            )
            for retain, tau in SETTINGS
            for d in (0.0, 1.0)
        },  # fmt: skip
    }
    PIN.emit(
        {
            "stubbed": stubbed,
            "authors_D1_path": authors_contextual_path_raises(their),
            **summary,
            "rows": rows,
        }
    )


if __name__ == "__main__":
    main()
