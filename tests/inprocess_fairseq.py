"""In-process fairseq objects for tests: task, tiny RoBERTa, criterion, optimizer, batch.

Built exactly as fairseq-train builds them (same parser, same registries), so
the hook under test sees what it sees in a real run.
"""

from pathlib import Path
from typing import Sequence

import torch
from fairseq import options, optim, tasks, utils
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

import fairseq_freelb  # noqa: F401  (registers the plugin)
from utils import TINY_ROBERTA, make_sentence_prediction_data

NO_DROPOUT = ["--dropout", "0", "--attention-dropout", "0", "--activation-dropout", "0", "--pooler-dropout", "0"]


class Setup:
    def __init__(self, task, model, criterion, optimizer, cfg):
        self.task, self.model, self.criterion, self.optimizer, self.cfg = task, model, criterion, optimizer, cfg

    def batch(self, size: int = 8, split: str = "train", start: int = 0):
        dataset = self.task.dataset(split)
        return dataset.collater([dataset[i] for i in range(start, start + size)])

    def train_step(self, sample, update_num: int = 0, ignore_grad: bool = False):
        self.optimizer.zero_grad()
        return self.task.train_step(sample, self.model, self.criterion, self.optimizer, update_num, ignore_grad)


def build(
    data_root: Path,
    adv_args: Sequence[str] = (),
    num_classes: int = 2,
    regression: bool = False,
    dropout: bool = False,
    seed: int = 3,
    task: str = "sentence_prediction",
) -> Setup:
    data_bin = data_root / "data-bin"
    if not (data_bin / "input0" / "dict.txt").exists():
        make_sentence_prediction_data(data_root, num_classes=num_classes, regression=regression)
    argv = [
        str(data_bin), "--user-dir", "fairseq_freelb", "--task", task,
        "--criterion", "freelb_sentence_prediction", "--num-classes", str(num_classes),
        "--init-token", "0", "--separator-token", "2", *TINY_ROBERTA,
        "--optimizer", "sgd", "--lr", "1.0", "--cpu", "--seed", str(seed),
        *([] if dropout else NO_DROPOUT),
        *(["--regression-target"] if regression else []),
        *adv_args,
    ]
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, argv)
    cfg = convert_namespace_to_omegaconf(args)
    utils.import_user_module(cfg.common)
    torch.manual_seed(seed)
    task_obj = tasks.setup_task(cfg.task)
    task_obj.load_dataset("train")
    task_obj.load_dataset("valid")
    model = task_obj.build_model(cfg.model)
    criterion = task_obj.build_criterion(cfg.criterion)
    optimizer = optim.build_optimizer(cfg.optimizer, [p for p in model.parameters() if p.requires_grad])
    return Setup(task_obj, model, criterion, optimizer, cfg)
