"""``python -m lmms_sttm.calibrate``: STTM thresholds for a model the paper never tuned.

The paper hand-tuned one ``(tau_s, tau_t)`` pair per model, benchmark and budget so that the mean
retention over the benchmark's videos lands near 50% or 30%; each video keeps its own share. This
command does the same for any supported model: it captures the hidden states entering the merge
layer once per sampled video (:mod:`lmms_sttm.calibrate.capture`), searches one pair per target
whose mean retention over the sample hits it (:mod:`lmms_sttm.calibrate.search`) and writes the
file that ``thresholds=FILE`` with ``budget=50|30`` reads (:mod:`lmms_sttm.methods.sttm_calibrated`).

    python -m lmms_sttm.calibrate --model qwen2_5_vl_sttm --pretrained Qwen/Qwen2.5-VL-7B-Instruct \\
        --tasks videomme_sttm --retention 0.5 0.3 --videos 32 --out qwen25vl_videomme.json
"""
