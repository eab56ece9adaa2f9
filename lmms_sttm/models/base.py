"""The shared lmms-eval model behind ``llava_video_sttm``, ``llava_onevision_sttm``, ``qwen2_vl_sttm``
and ``qwen2_5_vl_sttm``: loading, the video pipeline, prompts, KV reuse across questions, statistics.

Per ``generate_until`` call the requests are grouped by (task, video); each video is decoded and
encoded once; with ``kv_reuse`` its prefix ``[system + video (+ time instruction)]`` is prefilled
once (reduced at layer ``merge_layer``) and every question on it extends a fork of that cache.
Answers come back in the original order. A video that cannot be read (or runs out of GPU memory)
fails its requests with a recorded reason (empty answer) and the run goes on; any other error
stops the run on every rank (:mod:`lmms_sttm.models.failures`).
"""

from __future__ import annotations

import time
import zlib
from collections import OrderedDict
from dataclasses import replace

import torch
from lmms_eval.api.instance import GenerationResult, Instance, TokenCounts
from loguru import logger
from tqdm import tqdm

from lmms_sttm.engine import patch as engine_patch
from lmms_sttm.engine import session
from lmms_sttm.engine.hybrid import check_placement, layer_kinds
from lmms_sttm.engine.sampling import sampler
from lmms_sttm.methods.bind import MethodInstance, bind
from lmms_sttm.methods.spec import BuildContext, method_family
from lmms_sttm.models import provenance
from lmms_sttm.models.answer import AnswerText
from lmms_sttm.models.checkpoints import load_checkpoint
from lmms_sttm.models.failures import FailureBudget, free_cuda_cache, is_out_of_memory, stop_run
from lmms_sttm.models.families import MODEL_FAMILIES
from lmms_sttm.models.generate_only import GenerateOnlyLmms
from lmms_sttm.models.identity import config_fingerprint
from lmms_sttm.models.mrope import with_position_ids
from lmms_sttm.models.paper_settings import MERGE_LAYER, frame_protocol
from lmms_sttm.models.placement import pick_attention, pick_dtype, place_rank
from lmms_sttm.models.prefetch import Fetched, Prefetcher, fetch
from lmms_sttm.models.prompts import Prompt, time_instruction
from lmms_sttm.models.settings import ModelSettings
from lmms_sttm.models.stats import StatsWriter, default_stats_dir
from lmms_sttm.models.thinking import split_thinking, think_end_id
from lmms_sttm.models.video_inputs import (
    VideoInputs,
    as_encoder_outputs,
    even_frames,
    grid_seconds,
)
from lmms_sttm.models.warmup import warm_up
from lmms_sttm.video import VideoError


class SttmVideoModel(GenerateOnlyLmms):
    """Base class; subclasses set ``family`` (a key of ``models/families.MODEL_FAMILIES``) and ``paper_model``."""

    family = "llava"
    paper_model = "llava_video_7b"
    model_name = "llava_video_sttm"

    def __init__(self, **kwargs) -> None:
        super().__init__()
        self.settings = s = ModelSettings.from_model_args(**kwargs)
        # the rank's device and weight placement (gpus_per_replica: a replica over the rank's GPUs)
        self._device, where = place_rank(
            s.device, s.device_map, s.gpus_per_replica, self._rank, self._world_size
        )
        dtype = pick_dtype(s.dtype, self._device)
        attn = pick_attention(s.attn_implementation, self._device, dtype)
        loaded = load_checkpoint(s.pretrained, dtype=dtype, attn_implementation=attn, **where)
        self._model, self.processor, self.info = loaded
        self._model.eval()
        self.tokenizer = self.processor.tokenizer
        self.paper_key = self._paper_key()
        if s.method != "none" and s.newline != "no_token":
            raise ValueError(
                f"newline={s.newline} puts newline tokens inside the video span; reduction methods need "
                "newline=no_token (the paper's setting). Use method=none for the other layouts."
            )
        self.protocol = fam = MODEL_FAMILIES[self.family]
        if not fam.llava_options and s.newline != "no_token":
            raise ValueError(
                f"newline applies to the LLaVA models only; {self.model_name} has no newline tokens"
            )
        if self.family != "qwen" and s.rope_index != "original":
            raise ValueError("rope_index applies to Qwen2-VL / Qwen2.5-VL only")
        if s.enable_thinking is not None and not fam.thinking:
            raise ValueError(
                f"enable_thinking applies to models with a thinking switch; {self.model_name} has none"
            )
        # the thinking switch (None: the family has none); with it on the answer follows </think>
        self.thinking = (
            (s.enable_thinking if s.enable_thinking is not None else True) if fam.thinking else None
        )
        self.think_end = think_end_id(self.tokenizer) if self.thinking else None
        if s.features is not None and not fam.stored_features:
            raise ValueError(
                f"features= (two-stage runs) is not supported for {self.model_name} yet: its stored features "
                "would need the frame-block layout (and Qwen3-VL's DeepStack features); run it in one stage"
            )
        self.spec = spec = s.spec
        self.merge_layer = s.merge_layer
        if self.merge_layer is None:  # the method's own layer (DyCoke: 0), else the paper's for this model
            self.merge_layer = (
                spec.default_layer if spec.default_layer is not None else MERGE_LAYER[self.paper_key]
            )
        # the vision tower's attention for a method whose stage reads it, when the video is encoded
        # here (stored features carry none: the method's defaults then fall back)
        self.vision_attention = spec.reads_vision_attention and s.features is None
        self.num_layers = n_layers = self._model.config.get_text_config().num_hidden_layers
        if not 0 <= self.merge_layer < n_layers:
            raise ValueError(f"merge_layer={self.merge_layer} outside 0..{n_layers - 1} for this checkpoint")
        self.engine = engine_patch.apply_reduction(
            self._model, layer=self.merge_layer, decode_positions=s.decode_positions
        )
        add_time = (
            bool(self.info.add_time_instruction) if self.info.add_time_instruction is not None else False
        )
        self.use_time_instruction = s.time_instruction if s.time_instruction is not None else add_time
        if not self.protocol.llava_options and self.use_time_instruction:
            raise ValueError(f"time_instruction is a LLaVA-Video prompt feature; {self.model_name} has none")
        stats_dir = s.stats_dir or default_stats_dir()
        self.stats = StatsWriter(stats_dir, self.model_name, self._rank)
        provenance.write(stats_dir, self._device, self._rank, self._world_size)  # versions, device, command
        self.failures: list[dict] = []
        self.warmup_ms: float | None = None  # the rank's untimed warm-up (models/warmup.py), in every record
        self._warmed = False
        self.eos_ids = sorted(
            {self.tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")}
            - {None, self.tokenizer.unk_token_id}
        )
        logger.info(
            f"{self.model_name}: {s.method} at layer {self.merge_layer} on {self._device} ({dtype}, {attn}); "
            f"rank {self._rank}/{self._world_size}; stats -> {self.stats.path}"
        )

    # lmms-eval's model interface -------------------------------------------------------------
    @property
    def model(self):
        return self._model

    @property
    def device(self):
        return self._device

    # settings per request --------------------------------------------------------------------
    def _paper_key(self) -> str:
        text = self._model.config.get_text_config()
        if self.paper_model == "llava_video_7b" and text.hidden_size >= 8192:
            return "llava_video_72b"
        return self.paper_model

    def method_for(self, task: str) -> MethodInstance:
        """The reduction method bound to ``task`` (prefill and decode stages, parameters, layer);
        ``ValueError`` for settings it cannot serve on this task."""
        s = self.settings
        ctx = BuildContext(
            family=method_family(self.family),
            paper_model=self.paper_key,
            task=task,
            layer=self.merge_layer,
            num_layers=self.num_layers,
            budget=s.budget,
            budget_mode=s.budget_mode,
            retention=s.retention,
            model=self.model_name,
            checkpoint=config_fingerprint(self._model.config),
            vision_attention=self.vision_attention,
        )
        instance = bind(self.spec, s.method_settings, ctx, s.decode_positions)
        # a hybrid decoder (Qwen3.5) reads attention on its full-attention layers only: refuse here
        check_placement(
            instance.prefill, instance.decode, layer_kinds(self.engine.text_model), self.merge_layer
        )
        return instance

    def frames_for(self, task: str) -> tuple[float, int]:
        fps, cap = frame_protocol(self.protocol.frames, task)
        return (self.settings.fps or fps, self.settings.max_frames or cap)

    # one video -------------------------------------------------------------------------------
    def encode(
        self, path: str, task: str, fetched: Fetched | None = None
    ) -> tuple[VideoInputs, str | None, dict]:
        """Decode, sample and encode one video; returns the features, the time text and facts.

        ``fetched``: the video already read (decode-ahead, :mod:`lmms_sttm.models.prefetch`), else it
        is read now. With ``features=DIR`` (read mode) the stored features of the video replace
        decoding and the vision tower (:mod:`lmms_sttm.features.read`); a missing file raises
        ``VideoError``.
        """
        fetched = fetched if fetched is not None else fetch(self, path, task)
        if fetched.features:
            from lmms_sttm.features.read import encode_from_features

            return encode_from_features(self, path, task, loaded=fetched.data)
        frames, idx, info = fetched.data
        time_text = None
        fam = self.protocol
        if fam.pairs:
            frames, idx = even_frames(frames, idx)
        video = fam.encode(
            self._model,
            self.processor,
            frames,
            idx,
            info,
            fetched.pixels,
            self.settings,
            self.spec.vision_score if self.vision_attention else False,  # the kind the method reads
        )
        per_grid = fam.per_grid(self.processor)
        seconds = [i / info.fps for i in idx]  # of each sampled frame
        if self.use_time_instruction:  # LLaVA-Video only (refused for Qwen at start-up)
            time_text = time_instruction(info.duration, seconds)
        if video.grid is not None:
            video = replace(video, timestamps=grid_seconds(seconds, per_grid))
        return video, time_text, {"frames": len(idx), "video_seconds": round(info.duration, 3)}

    def prompt(self, ctx: str, time_text: str | None) -> Prompt:
        return self.protocol.prompt(ctx, time_text, self.thinking)

    def _ids(self, text: str) -> torch.Tensor:
        return torch.tensor(self.tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)

    def prefix_inputs(self, prefix_text: str, video: VideoInputs) -> tuple[dict, torch.Tensor]:
        """Model inputs of ``prefix_text`` with its one video placeholder expanded to the features."""
        vid = self.engine.family.video_token_id(self._model)
        if video.layout is not None:  # frame blocks: the model's own text around each block
            if prefix_text.count(video.layout.wrapper) != 1:
                raise ValueError(f"prompt prefix must hold exactly one {video.layout.wrapper!r}")
            ids = self._ids(prefix_text.replace(video.layout.wrapper, video.layout.text))
            if int((ids == vid).sum()) != video.num_placeholders:
                raise ValueError(
                    f"the written-out video holds {int((ids == vid).sum())} placeholders for "
                    f"{video.num_placeholders} features"
                )
            ids = ids[None].to(self._device)
        else:
            ids = self._ids(prefix_text)
            at = (ids == vid).nonzero().flatten()
            if at.numel() != 1:
                raise ValueError(f"prompt prefix must hold exactly one video placeholder, found {at.numel()}")
            i = int(at[0])
            ids = torch.cat([ids[:i], torch.full((video.num_placeholders,), vid), ids[i + 1 :]])[None].to(
                self._device
            )
        inputs = {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "mm_encoder_outputs": as_encoder_outputs(video, self.family),
            **video.extra,
        }
        if self.protocol.token_types:
            inputs["mm_token_type_ids"] = (ids == vid).long() * 2
        return self._with_positions(inputs), ids

    def _with_positions(self, inputs: dict) -> dict:
        """Qwen with ``rope_index=original``: the released models' M-RoPE ids as ``position_ids``."""
        if self.family != "qwen" or self.settings.rope_index != "original":
            return inputs
        return with_position_ids(self._model, inputs)

    # generation ------------------------------------------------------------------------------
    def generate_until(self, requests: list[Instance]) -> list:
        out: list = [""] * len(requests)
        groups: OrderedDict[tuple, list[int]] = OrderedDict()
        for i, req in enumerate(requests):
            if req.metadata.get("__padding_only__"):
                continue
            ctx, gen_kwargs, doc_to_visual, doc_id, task, split = req.args
            paths = doc_to_visual(self.task_dict[task][split][doc_id])
            if len(paths) != 1:
                self._fail(req, f"expected one video per question, got {len(paths)} visuals")
                continue
            groups.setdefault((task, str(paths[0])), []).append(i)
        for task in {key[0] for key in groups}:
            self.method_for(task)  # configuration errors fail the run on every rank alike
        bar = tqdm(
            total=sum(map(len, groups.values())),
            desc=f"{self.model_name} rank {self._rank}",
            position=self._rank,
        )
        extract = self.settings.features_mode == "extract"  # extraction reads its videos itself
        depth = 0 if extract else self.settings.prefetch
        with Prefetcher(lambda key: fetch(self, key[1], key[0]), list(groups), depth) as ahead:
            if groups and self.settings.warmup and not self._warmed:
                self._warm_up(next(iter(groups))[0])  # the worker reads the first videos meanwhile
            budget = FailureBudget(self.settings.max_failures, f"{self.model_name} rank {self._rank}")
            for n, ((task, path), members) in enumerate(groups.items()):
                self._video_frames, failed_before = None, len(self.failures)
                try:
                    fetched = None if extract else ahead.take(n)
                    self._answer_video(task, path, [requests[i] for i in members], members, out, fetched)
                except VideoError as e:  # data error: a missing/corrupt video or feature file
                    for i in members:
                        self._fail(requests[i], str(e))
                except Exception as e:
                    if not is_out_of_memory(e):  # a system error fails every video alike: stop all ranks
                        raise stop_run(f"{self.model_name} rank {self._rank}: {task} {path}", e) from e
                    free_cuda_cache()
                    reason = f"CUDA out of memory at {self._video_frames} frames: {str(e).splitlines()[0]}"
                    for i in members:
                        if not isinstance(out[i], GenerationResult):  # not answered before the OOM
                            self._fail(requests[i], reason, frames=self._video_frames)
                budget.add(len(members), len(self.failures) - failed_before)
                budget.check()
                bar.update(len(members))
        bar.close()
        return out

    def _warm_up(self, task: str) -> None:
        """One untimed question on a synthetic clip before the rank's first timed video."""
        self._warmed = True
        try:
            seconds = warm_up(self, task)
        except Exception as e:  # the real videos take the same path: a failure here is a system error
            raise stop_run(f"{self.model_name} rank {self._rank}: warm-up", e) from e
        self.warmup_ms = None if seconds is None else round(1000 * seconds, 3)

    def _gen_settings(self, gen_kwargs: dict, task: str, doc_id: int) -> tuple[int, list[str], object]:
        """``(max_new_tokens, stop strings, token picker)``: greedy unless ``do_sample`` with temperature > 0.

        Sampling is seeded per question (task, doc id), so answers do not depend on prefix reuse or
        on the rank; ``temperature``, ``top_p``, ``top_k`` and ``seed`` are honoured. With thinking
        on, the thinking block's budget (``max_thinking_tokens``, from the task's generation
        kwargs or the model's) comes on top of the answer's.
        """
        until = gen_kwargs.get("until") or []
        until = [until] if isinstance(until, str) else list(until)
        pick = None
        if gen_kwargs.get("do_sample") and float(gen_kwargs.get("temperature") or 0) > 0:
            seed = zlib.crc32(f"{task}/{doc_id}/{gen_kwargs.get('seed', 0)}".encode())
            pick = sampler(
                temperature=float(gen_kwargs["temperature"]),
                top_p=float(gen_kwargs.get("top_p") or 1.0),
                top_k=int(gen_kwargs.get("top_k") or 0),
                seed=seed,
            )
        max_new = int(gen_kwargs.get("max_new_tokens", 32))
        if self.thinking:
            max_new += int(gen_kwargs.get("max_thinking_tokens", self.settings.max_thinking_tokens))
        return max_new, until, pick

    def _answer_video(
        self,
        task: str,
        path: str,
        reqs: list[Instance],
        slots: list[int],
        out: list,
        fetched: Fetched | None = None,
    ) -> None:
        if self.settings.features_mode == "extract":
            from lmms_sttm.features.extract import extract_video

            extract_video(self, path, task)  # stage one of two: features only, the answers stay empty
            return
        if fetched is None:  # read now (the warm-up): the model waits for the whole read
            fetched = fetch(self, path, task)
            fetched.wait_s = fetched.decode_s
        video, time_text, facts = self.encode(path, task, fetched)
        self._video_frames = facts.get("frames")
        method = self.method_for(task)
        reducer = method.prefill
        grid = video.grid if reducer is not None else None
        prefix = None
        for k, (req, slot) in enumerate(zip(reqs, slots, strict=True)):
            ctx, gen_kwargs = req.args[0], req.args[1]
            max_new, until, pick = self._gen_settings(gen_kwargs, task, req.args[3])
            prompt = self.prompt(ctx, time_text)
            question = self._ids(prompt.question)
            if self.settings.kv_reuse and method.query_agnostic:
                if prefix is None:
                    inputs, _ = self.prefix_inputs(prompt.prefix, video)
                    prefix = session.prefill(
                        self.engine,
                        inputs,
                        reducer,
                        grid,
                        timestamps=video.timestamps,
                        vision_scores=video.vision_scores,
                    )
                ans = session.answer(
                    self.engine,
                    prefix,
                    question,
                    max_new_tokens=max_new,
                    eos_token_id=self.eos_ids,
                    pick=pick,
                    kv_pruning=method.decode,
                )
            else:
                inputs, ids = self.prefix_inputs(prompt.prefix, video)
                inputs["input_ids"] = torch.cat([ids, question[None].to(ids.device)], dim=1)
                inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
                if "mm_token_type_ids" in inputs:
                    pad = torch.zeros_like(question[None]).to(ids.device)
                    inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], pad], dim=1)
                inputs = self._with_positions(inputs)
                ans = session.generate(
                    self.engine,
                    inputs,
                    reducer,
                    grid,
                    max_new_tokens=max_new,
                    eos_token_id=self.eos_ids,
                    pick=pick,
                    kv_pruning=method.decode,
                    timestamps=video.timestamps if reducer is not None else None,
                    vision_scores=video.vision_scores if reducer is not None else None,
                )
            tokens, thinking = ans.tokens.tolist(), None
            if self.thinking:  # the answer follows the thinking block (models/thinking.py)
                tokens, thinking = split_thinking(tokens, self.think_end)
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            for stop in until:
                if stop and stop in text:
                    text = text.split(stop, 1)[0]
            text = text.strip()
            st = ans.stats
            n_visual = video.num_placeholders
            kept = st.visual_tokens_kept if reducer is not None else n_visual
            record = {
                "model": self.model_name,
                "method": self.spec.name,
                "task": task,
                "doc_id": req.args[3],
                "video": path,
                "params": method.params,
                "merge_layer": self.merge_layer,
                **facts,
                "visual_tokens": n_visual,
                "visual_tokens_kept": kept,
                "retained_pct": round(100.0 * kept / n_visual, 4),
                "vision_ms": round(1000 * video.vision_s, 3) if k == 0 else 0.0,
                # reading the video (or its feature files) and the model's wait for it (prefetch.py)
                "video_decode_ms": round(1000 * fetched.decode_s, 3) if k == 0 else 0.0,
                "gpu_idle_ms": round(1000 * fetched.wait_s, 3) if k == 0 else 0.0,
                "merge_ms": round(1000 * st.reduction_s, 3),
                "prefill_ms": round(1000 * st.prefill_s, 3),
                "decode_ms": round(1000 * st.decode_s, 3),
                "new_tokens": st.new_tokens,
                "prefix_reused": st.prefix_reused,
                **({"enable_thinking": self.thinking} if self.thinking is not None else {}),
                **(thinking.record() if thinking is not None else {}),
                **({"kv_video_kept": list(st.kv_video_kept)} if method.decode is not None else {}),
                "answer": text,
                "error": None,
                "rank": self._rank,
                "warmup_ms": self.warmup_ms,
                "time": time.time(),
            }
            self.stats.write(record)
            out[slot] = GenerationResult(
                AnswerText(text, record),  # the record reaches the task's process_results
                TokenCounts(input_tokens=st.prompt_tokens_reduced, output_tokens=st.new_tokens),
            )

    def _fail(self, req: Instance, reason: str, **facts) -> None:
        task, doc_id = req.args[-2], req.args[-3]
        logger.error(f"{self.model_name}: {task} doc {doc_id} failed: {reason}")
        record = {
            "model": self.model_name,
            "task": task,
            "doc_id": doc_id,
            "error": reason,
            "rank": self._rank,
            **facts,
            "time": time.time(),
        }
        self.failures.append(record)
        self.stats.write(record)
