"""Tiny GLUE checkpoints saved in-process, as fairseq-train saves them, for tests of the checkpoint checks.

A checkpoint holds what fairseq's ``Trainer.state_dict()`` writes: the config
(``cfg``, a plain dict), the model weights and ``task_state`` from
``task.state_dict()`` of the task built with ``--criterion
freelb_sentence_prediction`` (the adversarial mixin records the label names
and the data record there). No training step is taken: the checks under test
read what is recorded, not what was learned, and predictions only need to be
deterministic.
"""

from pathlib import Path

import torch

from utils import TINY_ROBERTA


def save_glue_checkpoint(data_bin: Path, path: Path, num_classes: int = 2, regression: bool = False,
                         seed: int = 1, task: str = "sentence_prediction") -> Path:
    """``--task sentence_prediction`` as the launch scripts run it, or ``task="freelb_sentence_prediction"``."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from omegaconf import OmegaConf

    import fairseq_freelb  # noqa: F401  (registers the criterion)

    argv = [
        str(data_bin), "--task", task, "--criterion", "freelb_sentence_prediction",
        "--num-classes", str(num_classes), "--init-token", "0", "--separator-token", "2",
        *TINY_ROBERTA, "--max-positions", "512", "--optimizer", "adam", "--lr", "1e-4", "--cpu", "--seed", str(seed),
        *(["--regression-target"] if regression else []),
    ]
    args = options.parse_args_and_arch(options.get_training_parser(), argv)
    cfg = convert_namespace_to_omegaconf(args)
    torch.manual_seed(seed)
    fairseq_task = tasks.setup_task(cfg.task)
    model = fairseq_task.build_model(cfg.model)
    fairseq_task.build_criterion(cfg.criterion)  # attaches the adversarial mixin, whose state_dict records the data
    state = {
        "args": None,
        "cfg": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "model": model.state_dict(),
        "criterion": None,
        "optimizer_history": [{"criterion_name": "FreeLBSentencePredictionCriterion", "optimizer_name": "FairseqAdam",
                               "lr_scheduler_state": {"best": None}, "num_updates": 0}],
        "task_state": fairseq_task.state_dict(),
        "extra_state": {},
        "last_optimizer_state": None,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def without_records(path: Path, out: Path, *keys: str) -> Path:
    """A copy of the checkpoint whose ``task_state`` lacks ``keys``: as written before they were recorded."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    for key in keys:
        state["task_state"].pop(key, None)
    torch.save(state, out)
    return out
