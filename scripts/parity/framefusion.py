"""FrameFusion against the authors' ``FrameFusion.forward``, layer by layer, on synthetic sequences.

A sequence is ``[system text | video T x H x W | question text]`` of seeded states (:mod:`videos`
for the video, ``--videos`` seeds per layout). A stand-in decoder of 28
layers (the authors hard-code 28 in their cost) transforms it: each layer is a fixed, seeded,
token-wise attention map and MLP map (the same for every token, so the two sides see the same
states whatever tokens remain), and its attention rows for the prune are a seeded bilinear
softmax of the last token over the sequence, mean over 4 heads. Both sides get the same maps:

- the authors': ``FrameFusion.prepare(...)`` on the whole sequence, then ``forward`` before layer
  0 and after every layer's attention map (with that layer's attention rows), as their decoder
  calls it;
- ours: ``lmms_sttm.merging.framefusion_authors.FrameFusion(cost).start(grid, 28, 0)``, its stages
  run on the video tokens with the attention over them, the text untouched.

Per case: the same final sequence (count and states, max difference), the same sparsity list and
the same branch (merge to the budget, or prune); ``merge_calls`` counts how many merging calls ran
before merging stopped (more than one: the multi-layer path). Budgets 50 / 30 = cost 0.5 / 0.3.
The sequences alternate mid, fair and lower similarity, so that both branches occur. Prints JSON.

    .venv/bin/python scripts/parity/framefusion.py --authors-dir DIR [--videos 10]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import authors  # noqa: E402
from videos import LAYOUTS, video  # noqa: E402

from lmms_sttm.engine.query_aware import AttentionContext  # noqa: E402
from lmms_sttm.engine.stages import compose  # noqa: E402
from lmms_sttm.merging.framefusion_authors import FrameFusion  # noqa: E402

LAYERS, HEADS, SYSTEM, QUESTION = 28, 4, 6, 10
COSTS = {50: 0.5, 30: 0.3}
SIMILARITY = ("mid", "fair", "lower")


class StandIn:
    """Seeded token-wise layer maps and attention rows (see the module docstring)."""

    def __init__(self, channels: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        scale = channels**-0.5
        self.attn = [torch.randn(channels, channels, generator=gen) * scale * 0.3 for _ in range(LAYERS)]
        self.mlp = [torch.randn(channels, channels, generator=gen) * scale * 0.3 for _ in range(LAYERS)]
        self.q = [torch.randn(HEADS, channels, channels, generator=gen) * scale for _ in range(LAYERS)]

    def attention_map(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        return h + torch.tanh(h @ self.attn[layer])

    def mlp_map(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        return h + torch.tanh(h @ self.mlp[layer])

    def rows(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """``[HEADS, n]``: the last token's attention over ``h [n, C]`` per head."""
        logits = torch.einsum("c,hcd,nd->hn", h[-1], self.q[layer], h)
        return torch.softmax(logits, dim=-1)


def theirs(ff_cls, seq: torch.Tensor, grid, cost: float, net: StandIn):
    t, h, w = grid
    n = seq.shape[0]
    patch = torch.full((1, n), -1, dtype=torch.long)
    patch[0, SYSTEM : SYSTEM + t * h * w] = torch.arange(t * h * w) % (h * w)
    ff = ff_cls(cost=cost)
    ff.prepare(patch, h * w, torch.tensor(SYSTEM), torch.tensor(SYSTEM + t * h * w), t * h * w, n)
    pos = [torch.zeros(1, n, 2), torch.zeros(1, n, 2)]
    states, pos, _ = ff.forward(seq[None], pos, None, None)
    for layer in range(LAYERS):
        attn = net.rows(layer, states[0])[None, :, None, :]  # [1, heads, 1 (last query), n]
        after = net.attention_map(layer, states[0])[None]
        states, pos, _ = ff.forward(after, pos, None, attn)
        states = net.mlp_map(layer, states[0])[None]
    branch = "budget" if ff.finish_merging and ff.finish_pruning and len(ff.sparsity_list) == 0 else None
    return states[0], list(ff.sparsity_list), branch


def ours(seq: torch.Tensor, grid, cost: float, net: StandIn):
    t, h, w = grid
    n_video = t * h * w
    pre, vid, post = seq[:SYSTEM], seq[SYSTEM : SYSTEM + n_video], seq[SYSTEM + n_video :]
    run = FrameFusion(cost).start(grid, LAYERS, 0)
    tokens = None
    stage = run.next_stage()
    if stage is not None and stage.point == "input":
        plan = run.run(vid, grid, AttentionContext(None, 0, LAYERS, tokens))
        tokens, vid, stage = compose(tokens, plan), plan.features, run.next_stage()
    for layer in range(LAYERS):
        full = torch.cat([pre, vid, post])
        rows = net.rows(layer, full).mean(0)
        full = net.attention_map(layer, full)
        pre, vid, post = full[:SYSTEM], full[SYSTEM : SYSTEM + vid.shape[0]], full[SYSTEM + vid.shape[0] :]
        if stage is not None and stage.layer == layer:
            scores = rows[SYSTEM : SYSTEM + vid.shape[0]] if stage.needs_attention else None
            plan = run.run(vid, (1, 1, vid.shape[0]), AttentionContext(scores, layer + 1, LAYERS, tokens))
            tokens, vid, stage = compose(tokens, plan), plan.features, run.next_stage()
        full = net.mlp_map(layer, torch.cat([pre, vid, post]))
        pre, vid, post = full[:SYSTEM], full[SYSTEM : SYSTEM + vid.shape[0]], full[SYSTEM + vid.shape[0] :]
    return torch.cat([pre, vid, post]), list(run.sparsities), run.branch


def main(argv=None) -> int:
    p = authors.parser(__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=10, help="seeded sequences per layout and budget")
    p.add_argument("--channels", type=int, default=64)
    args = p.parse_args(argv)
    module = authors.import_file(
        authors.root_from(args), "llava/model/framefusion/main.py", "sttm_authors_framefusion"
    )
    torch.set_num_threads(1)
    rows = []
    for name, t, h, w in LAYOUTS:
        for budget, cost in COSTS.items():
            tally = {"same": 0, "differ": [], "max_state_diff": 0.0, "branches": {}, "merge_calls": {}}
            for seed in range(args.videos):
                gen = torch.Generator().manual_seed(1000 + seed)
                vid = video(t, h, w, args.channels, seed, SIMILARITY[seed % 3]).reshape(-1, args.channels)
                text = torch.randn(SYSTEM + QUESTION, args.channels, generator=gen)
                seq = torch.cat([text[:SYSTEM], vid, text[SYSTEM:]])
                net = StandIn(args.channels, seed)
                a_states, a_sparsity, _ = theirs(
                    module.FrameFusion, seq.clone(), (t, h, w), cost, net
                )  # theirs writes into it
                b_states, b_sparsity, branch = ours(seq, (t, h, w), cost, net)
                tally["branches"][str(branch)] = tally["branches"].get(str(branch), 0) + 1
                calls = str(len(b_sparsity) + (branch == "budget"))  # merging calls before it stopped
                tally["merge_calls"][calls] = tally["merge_calls"].get(calls, 0) + 1
                same = a_states.shape == b_states.shape and a_sparsity == b_sparsity
                diff = float((a_states - b_states).abs().max()) if same else float("inf")
                if same and diff <= 1e-4:
                    tally["same"] += 1
                    tally["max_state_diff"] = max(tally["max_state_diff"], diff)
                else:
                    tally["differ"].append(f"seed {seed}: {tuple(a_states.shape)} vs {tuple(b_states.shape)}, "
                                           f"sparsity {a_sparsity} vs {b_sparsity}, diff {diff:.2e}")  # fmt: skip
            rows.append({"layout": f"{name} {t}x{h}x{w}", "budget": budget, "videos": args.videos, **tally})
    authors.emit({"driver": "framefusion", "layers": LAYERS, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
