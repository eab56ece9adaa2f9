"""The lmms-eval model interface shared by our models: generation only, batch 1, rank from the launcher."""

from __future__ import annotations

from lmms_eval.api.model import lmms

from lmms_sttm.runtime import dist_rank_world, release_process_group_at_exit


class GenerateOnlyLmms(lmms):
    """Base of our lmms-eval models: ``rank``/``world_size`` from torch.distributed or the environment
    (accelerate's state is wrong on CPU gloo runs), batch size 1, no loglikelihood or multi-round."""

    model_name = "lmms_sttm"

    def __init__(self) -> None:
        super().__init__()
        self._rank, self._world_size = dist_rank_world()
        if self._world_size > 1:
            release_process_group_at_exit()

    @property
    def rank(self) -> int:
        return self._rank

    @property
    def world_size(self) -> int:
        return self._world_size

    @property
    def batch_size(self) -> int:
        return 1

    def loglikelihood(self, requests):
        raise NotImplementedError(f"{self.model_name} only generates (all STTM tasks are generate_until)")

    def generate_until_multi_round(self, requests):
        raise NotImplementedError(f"{self.model_name} does not support multi-round generation")
