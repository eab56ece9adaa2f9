"""What does the organism count: needle frames, or the needle tokens' share of the visual tokens?

Feeds held-out counting clips (:func:`lmms_sttm.organism.bench.held_out`, family ``cnt_insert1``)
to an organism checkpoint through the training path (:func:`lmms_sttm.organism.sequences.build_batch`:
visual tokens kept by an index list, the reply after the position gap of a reduction) and reads the
count word it predicts first (the reply's word, argmax over ``1``-``4``). Conditions keep different
visual tokens, changing the needle tokens' share of what is kept while every needle frame stays
visible:

- ``full``: all 784 tokens; ``random50`` / ``random30``: a random 50% / 30% (share unchanged);
- ``needles_all_others50`` / ``others25``: every needle token, 50% / 25% of the others (share up);
- ``needles_quarter``: 12 of each needle frame's 49 tokens, every other token (share down, every needle frame still seen).

A reader of frames answers the same count in every condition; a reader of the share over-counts when
it rises and under-counts when it falls. Prints JSON: per condition, accuracy, mean signed error
(predicted - true count) and the needle share of the kept tokens::

    .venv/bin/python scripts/organism_count_readout.py --checkpoint lmms_sttm/organism/weights --videos 40
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch


def keep_for(condition: str, needle: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of the visual tokens kept (``needle``: bool ``[K]``, True on needle frames' tokens)."""
    n = needle.size
    idx = np.arange(n)
    if condition == "full":
        return idx
    if condition.startswith("random"):
        return np.sort(rng.choice(n, round(n * int(condition[6:]) / 100), replace=False))
    others = idx[~needle]
    if condition.startswith("needles_all_others"):
        keep_others = rng.choice(others, round(others.size * int(condition[18:]) / 100), replace=False)
        return np.sort(np.concatenate([idx[needle], keep_others]))
    if condition == "needles_quarter":
        frames = idx[needle].reshape(-1, 49)
        picked = np.concatenate([rng.choice(f, 12, replace=False) for f in frames])
        return np.sort(np.concatenate([picked, others]))
    raise ValueError(condition)


CONDITIONS = (
    "full",
    "random50",
    "random30",
    "needles_all_others50",
    "needles_all_others25",
    "needles_quarter",
)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="lmms_sttm/organism/weights")
    p.add_argument("--videos", type=int, default=40, help="held-out counting videos")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from lmms_sttm.models.checkpoints import load_checkpoint
    from lmms_sttm.organism.bench import held_out
    from lmms_sttm.organism.clips import COUNTS
    from lmms_sttm.organism.sequences import (
        _ids,
        build_batch,
        clip_row,
        encode_clip,
        question_text,
        video_labels,
    )

    model, processor, _ = load_checkpoint(args.checkpoint)
    model.eval()
    tok = processor.tokenizer
    words = [_ids(tok, c)[-1] for c in COUNTS]
    items = [(c, q) for vid, c, q in held_out(args.videos) if q.family == "cnt_insert1"]
    out = {c: {"right": 0, "error": 0.0, "share": 0.0} for c in CONDITIONS}
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for clip, q in items:
            tower = encode_clip(clip, model, processor).float()[None]
            labels = video_labels(tok, clip)
            needle = np.zeros(labels.numel(), bool)
            for frame, _ in clip.needles:
                needle[frame * 49 : (frame + 1) * 49] = True
            order = list(COUNTS)
            text = question_text(q, order)
            letter = "ABCD"[order.index(q.answer)]
            row = clip_row(tok, clip.num_frames, text, letter, q.answer)
            for cond in CONDITIONS:
                keep = keep_for(cond, needle, rng)
                batch = build_batch(tok, tower, [row], [labels], torch.from_numpy(keep)[None])
                inner = model.model
                proj = inner.multi_modal_projector(tower.flatten(0, 1))
                vis = inner.apply_pooling(proj).reshape(1, -1, proj.shape[-1])[:, batch.keep[0]]
                emb = inner.language_model.embed_tokens(batch.ids)
                s = batch.video_start
                emb = torch.cat([emb[:, :s], vis, emb[:, s + vis.shape[1] :]], 1)
                hidden = inner.language_model(
                    inputs_embeds=emb, position_ids=batch.positions
                ).last_hidden_state
                at = row.reply_start - (needle.size - keep.size)  # the reply's " ": predicts the digit
                pred = int(model.lm_head(hidden[0, at])[words].argmax()) + 1
                out[cond]["right"] += pred == int(q.answer)
                out[cond]["error"] += pred - int(q.answer)
                out[cond]["share"] += needle[keep].mean() / (len(clip.needles) / clip.num_frames)
    n = len(items)
    report = {
        "checkpoint": args.checkpoint,
        "videos": n,
        "conditions": {
            c: {
                "accuracy": round(100 * v["right"] / n, 1),
                "mean_signed_error": round(v["error"] / n, 3),
                "needle_share_vs_unreduced": round(v["share"] / n, 3),
            }
            for c, v in out.items()
        },
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
