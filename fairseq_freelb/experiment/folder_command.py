"""The ``fairseq-train`` command of one run on a data folder's materialized sides.

GLUE (``--task sentence_prediction --criterion freelb_sentence_prediction``)
follows the launch scripts (``examples/roberta_glue/common.sh``): Adam
(0.9, 0.999), eps 1e-6, weight decay 0.1, dropout 0.1, polynomial decay with
6 % warmup, ``--init-token 0 --separator-token 2``, the task's metric flags.
Multiple choice (``--task multiple_choice --criterion freelb_sentence_ranking``)
follows ``examples/multiple_choice_common.sh``: Adam (0.9, 0.98), weight decay
0.01. Every run validates after every epoch on the selection side (``valid``)
and the held-out side(s) (``valid1``, MNLI's mismatched ``valid2``), saves no
checkpoint (``--no-save``) and logs JSON, which :func:`.runs.run_training` reads.
The user's fairseq flags (after ``--``) come last, so they override any of these.
"""

from pathlib import Path
from typing import List, Sequence

from fairseq_freelb.experiment.folder import TaskFolder
from fairseq_freelb.experiment.runs import Schedule, Setting, batches_per_epoch, fairseq_train


def total_updates(train_size: int, setting: Setting, schedule: Schedule) -> int:
    return schedule.epochs * batches_per_epoch(train_size, schedule.batch_size) * setting.updates_per_batch


def train_command(folder: TaskFolder, data_dir: Path, train_size: int, valid_subsets: Sequence[str],
                  model_flags: Sequence[str], setting: Setting, seed: int, schedule: Schedule, device: str,
                  amp: str, extra: Sequence[str], save_dir: Path) -> List[str]:
    updates = total_updates(train_size, setting, schedule)
    if device == "cuda":
        precision = ["--amp", "--amp-dtype", "bf16"] if amp == "bf16" else ["--fp16"]
    else:
        precision = ["--cpu"]
    if folder.kind == "glue":
        task = ["--task", "sentence_prediction", "--criterion", "freelb_sentence_prediction",
                "--num-classes", str(folder.num_classes), "--init-token", "0", "--separator-token", "2",
                *folder.metric_flags]
        optimizer = ["--adam-betas", "(0.9,0.999)", "--weight-decay", "0.1"]
    else:
        task = ["--task", "multiple_choice", "--criterion", "freelb_sentence_ranking"]
        optimizer = ["--adam-betas", "(0.9,0.98)", "--weight-decay", "0.01"]
    return [
        fairseq_train(), str(data_dir), "--user-dir", "fairseq_freelb", *task, *model_flags,
        "--dropout", "0.1", "--attention-dropout", "0.1",
        "--optimizer", "adam", *optimizer, "--adam-eps", "1e-06", "--clip-norm", "0.0",
        "--lr", str(schedule.lr), "--lr-scheduler", "polynomial_decay",
        "--warmup-updates", str(max(1, round(schedule.warmup_fraction * updates))), "--total-num-update", str(updates),
        "--max-update", str(updates), "--max-epoch", str(schedule.epochs),
        "--batch-size", str(schedule.batch_size), "--required-batch-size-multiple", "1",
        "--valid-subset", ",".join(valid_subsets),
        "--seed", str(seed), *precision, "--num-workers", "0",
        "--save-dir", str(save_dir), "--no-save",
        "--log-format", "json", "--log-interval", "10", "--no-progress-bar",
        *setting.flags, *extra,
    ]
