"""One process of the conformance check's multi-process rule: prints a run's fingerprint as JSON.

python -m lmms_sttm.conformance.worker METHOD FAMILY SEED
"""

from __future__ import annotations

import hashlib
import json
import sys

import torch


def fingerprint_of(method: str, family: str, seed: int) -> dict:
    from lmms_sttm.conformance import rules
    from lmms_sttm.conformance.tiny import make_inputs, text_tokens
    from lmms_sttm.methods import registry
    from lmms_sttm.methods.bind import method_settings

    spec = registry.get(method)
    case = rules.make_case(family, spec)
    case.video = make_inputs(family, seed=seed, large=True)
    inst = rules.instance(spec, method_settings(spec, {}), case, **rules.native_budget(spec))
    prefix, plans = rules.whole_prompt(case, inst.prefill, text_tokens(5, seed=3))
    logits = prefix.last_logits.float().cpu().numpy().tobytes()
    return {**rules.fingerprint(plans), "logits": hashlib.sha256(logits).hexdigest()}


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    method, family, seed = argv[0], argv[1], int(argv[2])
    print(json.dumps(fingerprint_of(method, family, seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
