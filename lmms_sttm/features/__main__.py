"""``python -m lmms_sttm.features extract ...``: stage one of the two-stage evaluation.

``python -m lmms_sttm.features list --root datasets`` prints every feature set under a root (one
JSON object per line: benchmark, checkpoint folder, sampling, counts, the first video's shape and
metadata keys, or why it does not load) and the move a misplaced Hub download needs.

Runs lmms-eval with ``features_mode=extract`` so the task's own ``doc_to_visual``, its sharding
over ranks and accelerate's multi-process launch are reused; each video is written once in the
authors' layout (see :mod:`lmms_sttm.features.layout`) and finished videos are skipped, so a killed
run resumes where it stopped. The lmms-eval "answers" of such a run are empty.

Example::

    python -m lmms_sttm.features extract --model llava_video_sttm \\
        --pretrained lmms-lab/LLaVA-Video-7B-Qwen2 --tasks videomme_sttm --root datasets --num_processes 8
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile


def extract_command(args: argparse.Namespace) -> list[str]:
    """The lmms-eval command line (under ``accelerate launch`` when ``num_processes > 1``)."""
    model_args = f"pretrained={args.pretrained},method=none,features={args.root},features_mode=extract"
    extra = args.model_args.strip(", ")
    if extra:
        model_args += f",{extra}"
    if args.num_processes > 1:
        launcher = [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--num_processes",
            str(args.num_processes),
        ]
        launcher += ["-m", "lmms_eval"]
    else:
        launcher = [sys.executable, "-m", "lmms_eval"]
    cmd = [*launcher, "--model", args.model, "--model_args", model_args, "--tasks", args.tasks]
    cmd += [
        "--batch_size",
        "1",
        "--output_path",
        args.output_path or tempfile.mkdtemp(prefix="lmms_sttm_extract_"),
    ]
    if args.limit is not None:
        cmd += ["--limit", str(args.limit)]
    return cmd


def list_sets(root: str) -> int:
    """Print the inventory of ``root``; exit status 1 when nothing loads or a set fails."""
    from lmms_sttm.features.inventory import inventory

    sets, moves = inventory(root)
    for fs in sets:
        print(json.dumps(fs.as_dict()), flush=True)
    for move in moves:
        print(f"move: {move}", file=sys.stderr)
    if not sets:
        print(
            f"no feature set under {root} ({{bench}}/preprocess_data/{{ckpt}}/{{sampling}})", file=sys.stderr
        )
    return 0 if sets and not any(fs.error for fs in sets) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmms_sttm.features", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("extract", help="write features of every video of the tasks (resumable)")
    ex.add_argument(
        "--model", required=True, help="llava_video_sttm, llava_onevision_sttm, qwen2_vl_sttm, ..."
    )
    ex.add_argument("--pretrained", required=True, help="hub id or local checkpoint folder")
    ex.add_argument("--tasks", required=True, help="lmms-eval task name(s), comma-separated")
    ex.add_argument("--root", required=True, help="feature root (the authors' datasets/ folder)")
    ex.add_argument("--num_processes", type=int, default=1, help="processes (GPUs) via accelerate launch")
    ex.add_argument(
        "--model_args", default="", help="extra model_args, e.g. max_frames=64,fps=1,dtype=bfloat16"
    )
    ex.add_argument("--limit", type=int, default=None, help="first N documents per task (a smoke run)")
    ex.add_argument("--output_path", default=None, help="lmms-eval's output folder (default: a temp dir)")
    ex.add_argument("--dry_run", action="store_true", help="print the command only")
    ls = sub.add_parser("list", help="print the feature sets under a root and whether they load")
    ls.add_argument("--root", required=True, help="feature root (the authors' datasets/ folder)")
    args = parser.parse_args(argv)
    if args.command == "list":
        return list_sets(args.root)
    if args.num_processes < 1:
        parser.error("--num_processes must be >= 1")
    cmd = extract_command(args)
    print(shlex.join(cmd), flush=True)
    if args.dry_run:
        return 0
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
