"""GLUE with FreeLB on any Hugging Face checkpoint: train, evaluate on dev, write the leaderboard test file.

    python examples/hf_glue/run_glue.py --task RTE --glue_dir glue_data --model_name_or_path albert-xxlarge-v2 \\
        --recipe albert-xxlarge-v2 --output_dir runs/RTE

The official GLUE TSV files are read by the package's own reader
(fairseq_freelb.glue.tsv: each task's column layout, bad rows reported as
file:line, the package's label order), so class i means the same label here
as in the fairseq path. The label names are saved in the model's config
(id2label/label2id); a checkpoint whose config names other labels in that
order is refused. Training is fairseq_freelb.hf.AdversarialTrainer with the
--adv-* flags (FreeLB by default; see docs/huggingface.md). Test predictions
go to OUTPUT_DIR/submission/<TASK>.tsv (MNLI: MNLI-m.tsv, MNLI-mm.tsv and AX.tsv
when the diagnostic file is present) in the GLUE server's format, written
and checked by the package's submission code (fairseq_freelb.glue.submission),
so one zip can mix files from fairseq and from this script.

--recipe albert-xxlarge-v2 and --recipe bert-base set per-task defaults
(recipes.py names the source of every value); any flag you give wins. Every
transformers TrainingArguments flag works (--per_device_train_batch_size,
--num_train_epochs, --fp16, --report_to tensorboard, ...). Without
--do_train/--do_eval/--do_predict, all three run.
"""

import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Optional

import numpy as np
import torch
from transformers import (AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                          HfArgumentParser, TrainingArguments)

from fairseq_freelb.commands import CommandError, run_command
from fairseq_freelb.core.errors import AdversarialConfigError
from fairseq_freelb.glue import submission
from fairseq_freelb.glue.benchmark_tasks import TRAIN, VALID, get_task
from fairseq_freelb.glue.submission import SubmissionError
from fairseq_freelb.glue.tsv import GlueFormatError, read_task
from fairseq_freelb.hf import AdversarialArguments, AdversarialTrainer
from fairseq_freelb.metrics import glue_metrics

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipes import RECIPES, recipe_flags  # noqa: E402

PROG = "examples/hf_glue/run_glue.py"


@dataclass
class GlueArguments:
    task: str = field(metadata={"help": "GLUE task folder name: CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE, WNLI"})
    glue_dir: str = field(metadata={"help": "the GLUE download (one folder per task, as download_glue_data.py writes it)"})
    model_name_or_path: str = field(metadata={"help": "a Hugging Face model folder (or hub name, where the hub is reachable)"})
    recipe: str = field(default="none", metadata={
        "help": f"per-task defaults: none, {', '.join(RECIPES)} (sources in examples/hf_glue/recipes.py)"})
    max_seq_length: int = field(default=128, metadata={"help": "longer inputs are truncated (longest sentence first)"})
    on_bad_row: str = field(default="fail", metadata={
        "help": "fail: stop at a malformed training/dev row (all listed as file:line); skip: leave it out and list it"})
    hidden_dropout: Optional[float] = field(default=None, metadata={"help": "override the config's hidden dropout"})
    attention_dropout: Optional[float] = field(default=None, metadata={"help": "override the config's attention dropout"})
    ax_file: Optional[str] = field(default=None, metadata={"help": "MNLI: the diagnostic (AX) TSV, if not in GLUE_DIR"})


def parse(argv: Optional[List[str]]):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser((GlueArguments, AdversarialArguments, TrainingArguments), prog=PROG,
                              description=__doc__.split("\n\n")[0])
    if "-h" not in argv and "--help" not in argv:
        glue, _ = parser.parse_known_args(argv)
        if getattr(glue, "task", None) and getattr(glue, "recipe", "none") != "none":

            argv = recipe_flags(glue.recipe, get_task(glue.task).name, torch.cuda.is_available()) + argv
    glue, adversarial, training = parser.parse_args_into_dataclasses(argv)
    if not (training.do_train or training.do_eval or training.do_predict):
        training.do_train = training.do_eval = training.do_predict = True
    return glue, adversarial, training


class Encoded(torch.utils.data.Dataset):
    def __init__(self, features: List[dict]):
        self.features = features

    def __len__(self):
        return len(self.features)

    def __getitem__(self, i):
        return self.features[i]


def encode(tokenizer, task, rows, max_length: int) -> Encoded:
    """Token ids of each example (one sentence or a pair) and its label index (classification) or score."""
    columns = list(zip(*[ex.sentences for ex in rows.examples]))
    encoded = tokenizer(*[list(c) for c in columns], truncation=True, max_length=max_length)
    features = []
    for i, ex in enumerate(rows.examples):
        item = {k: v[i] for k, v in encoded.items()}
        if ex.label is not None:
            item["labels"] = float(ex.label) if task.regression else task.labels.index(ex.label)
        features.append(item)
    return Encoded(features)


def position_limit(tokenizer, config) -> int:
    """The longest input the model takes: the tokenizer's model_max_length, else the config's position count."""
    limit = getattr(tokenizer, "model_max_length", None)
    if limit is None or limit > 1_000_000:  # transformers' "unset" is a huge number
        limit = getattr(config, "max_position_embeddings", None) or 512
    return int(limit)


def label_config(path: str, task, glue: GlueArguments):
    """The checkpoint's config with this task's head: label names in the package's order, dropout overrides."""


    config = AutoConfig.from_pretrained(path)
    names = ["score"] if task.regression else list(task.labels)
    theirs = [config.id2label[i] for i in sorted(config.id2label)] if getattr(config, "id2label", None) else []
    if len(theirs) == len(names) and theirs != names and not all(n == f"LABEL_{i}" for i, n in enumerate(theirs)):
        raise CommandError(
            f"{path}/config.json: its classes are labels {theirs}, {task.name}'s are {names} in this order: its "
            "predictions would mean other labels; start from a checkpoint trained on this label order or from an encoder"
        )
    config.num_labels = len(names)
    config.id2label = dict(enumerate(names))
    config.label2id = {n: i for i, n in enumerate(names)}
    config.problem_type = "regression" if task.regression else "single_label_classification"
    config.finetuning_task = task.name
    for attr, value in (("hidden_dropout_prob", glue.hidden_dropout), ("attention_probs_dropout_prob", glue.attention_dropout)):
        if value is not None:
            setattr(config, attr, value)
    return config


def metrics_fn(task):
    def compute(prediction) -> Dict[str, float]:
        logits, targets = prediction.predictions, prediction.label_ids
        if task.regression:
            return glue_metrics(task.metrics, np.asarray(logits).reshape(-1), np.asarray(targets).reshape(-1))
        labels = np.asarray(task.labels, dtype=object)
        return glue_metrics(task.metrics, labels[np.argmax(logits, axis=-1)], labels[np.asarray(targets)], positive="1")

    return compute


def write_leaderboard_file(trainer, task, split: str, rows, dataset: Encoded, out_dir: Path) -> Path:
    """``<FILE>.tsv`` in the server's format, via the package's submission code; checked, then moved into place."""

    name = next(f for f, s in task.submission_files.items() if s == split)
    output = trainer.predict(dataset)
    scores = np.asarray(output.predictions)
    if task.regression:
        predicted = SimpleNamespace(scores=scores.reshape(-1))
    else:
        predicted = SimpleNamespace(labels=np.asarray(task.labels, dtype=object)[scores.argmax(axis=-1)])
    ids = [ex.index for ex in rows.examples]
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, staged = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out_dir)
    os.close(fd)
    try:
        submission.write_file(Path(staged), ids, submission.format_predictions(task, predicted))
        problems = submission.check_file(name, Path(staged).read_text(encoding="utf-8"), task, split, ids)
        if problems:
            raise submission.SubmissionError(f"{name}: " + "; ".join(problems))
        os.chmod(staged, 0o666 & ~_umask())
        os.replace(staged, out_dir / name)
    finally:
        if os.path.exists(staged):
            os.unlink(staged)
    return out_dir / name


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def main(argv: Optional[List[str]] = None) -> int:
    glue, adversarial, training = parse(argv)
    task = get_task(glue.task)
    splits = read_task(task, Path(glue.glue_dir), on_bad_row=glue.on_bad_row, ax_file=glue.ax_file)
    for split, rows in splits.items():
        skipped = f", {len(rows.bad_rows)} bad rows skipped" if rows.bad_rows else ""
        print(f"{task.name} {split}: {len(rows.examples)} examples from {rows.path}{skipped}", flush=True)

    model_path = Path(glue.model_name_or_path).expanduser()
    if glue.model_name_or_path.startswith(("/", ".", "~")) and not (model_path / "config.json").is_file():
        raise FileNotFoundError(f"--model_name_or_path {glue.model_name_or_path}: no config.json there (a Hugging Face model folder)")
    tokenizer = AutoTokenizer.from_pretrained(glue.model_name_or_path)
    config = label_config(glue.model_name_or_path, task, glue)
    model = AutoModelForSequenceClassification.from_pretrained(glue.model_name_or_path, config=config)
    max_length = min(glue.max_seq_length, position_limit(tokenizer, config))
    if max_length < glue.max_seq_length:
        print(f"--max_seq_length {glue.max_seq_length}: {glue.model_name_or_path} takes at most {max_length} tokens; "
              f"truncating to {max_length}", flush=True)
    data = {split: encode(tokenizer, task, rows, max_length) for split, rows in splits.items()}
    trainer = AdversarialTrainer(
        model=model, args=training, adversarial_args=adversarial, train_dataset=data[TRAIN],
        eval_dataset=data[VALID], processing_class=tokenizer, data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=metrics_fn(task),
    )
    if training.do_train:
        trainer.train()
        trainer.save_model()  # config.json carries id2label: the label names in head order
    if training.do_eval:
        for split in task.valid_splits:
            if split in data:
                result = trainer.evaluate(data[split], metric_key_prefix=f"eval_{split}")
                print(f"{task.name} {split}: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(result.items())), flush=True)
    if training.do_predict:
        for split in task.test_splits:
            if split in data:
                path = write_leaderboard_file(trainer, task, split, splits[split], data[split],
                                              Path(training.output_dir) / "submission")
                print(f"{path}: {len(splits[split].examples)} test predictions (GLUE server format, checked)", flush=True)
    return 0


if __name__ == "__main__":

    sys.exit(run_command(PROG, main, errors=(CommandError, AdversarialConfigError, GlueFormatError, SubmissionError,
                                             FileNotFoundError, KeyError)))
