"""Start RTE, MRPC or STS-B from a fine-tuned MNLI model, its head replaced (``INIT_FROM`` of the launch scripts).

"We start with MNLI-finetuned models on RTE, MRPC and STS-B for the test
submissions" (Zhu et al. 2020, section 4.1, after RoBERTa). This command
checks that the checkpoint is an MNLI classifier (its recorded label names
are MNLI's), that its vocabulary fits the task's data, and writes a copy
without any classification head and without MNLI's training state (task
state, optimizer, update count), which the launch script passes as
``--restore-file``. The new task's head therefore always starts from random
initialisation: fairseq would otherwise reuse a head of the same name and
size, and the new run records the new task's label names in its own
checkpoints. The copy is written aside and moved into place; one line says
what was done::

    python -m fairseq_freelb.glue.init_from --checkpoint checkpoints/MNLI/freelb-seed1/checkpoint_best.pt \\
        --task RTE --data-bin glue-bin/RTE-bin --out checkpoints/RTE/freelb-seed1/init_from_mnli.pt
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from fairseq_freelb.checkpoint import load_checkpoint
from fairseq_freelb.commands import CommandError, run_command
from fairseq_freelb.glue.benchmark_tasks import get_task

MNLI_LABELS = list(get_task("MNLI").labels)
HEADS = "classification_heads."
EMBED_KEYS = ("encoder.sentence_encoder.embed_tokens.weight", "decoder.sentence_encoder.embed_tokens.weight")


def strip_heads(state: dict, source: str) -> dict:
    """The checkpoint's encoder (and masked-LM head) without classification heads or training state."""
    model = {k: v for k, v in state["model"].items() if HEADS not in k}
    return {
        "args": state.get("args"),
        "cfg": state.get("cfg"),
        "model": model,
        "criterion": {},
        "optimizer_history": [{"criterion_name": "None", "optimizer_name": "None", "lr_scheduler_state": {},
                               "num_updates": 0}],
        "task_state": {},
        "extra_state": {"init_from": source, "init_from_task": "MNLI"},
        "last_optimizer_state": None,
    }


def check_mnli(state: dict, path: str) -> dict:
    """The MNLI head's size; refuses a checkpoint that is not an MNLI classifier."""
    names = (state.get("task_state") or {}).get("label_names")
    if names is None:
        raise CommandError(f"INIT_FROM={path}: records no label names, so it cannot be told to be an MNLI model; "
                           "give a checkpoint fine-tuned by examples/roberta_glue/mnli.sh")
    if list(names) != MNLI_LABELS:
        raise CommandError(f"INIT_FROM={path}: trained on labels {list(names)}, not MNLI's {MNLI_LABELS}: "
                           "give a fine-tuned MNLI checkpoint")
    heads = {k.split(HEADS, 1)[1].split(".")[0]: v.shape[0] for k, v in state["model"].items()
             if HEADS in k and k.endswith("out_proj.weight")}
    if not heads:
        raise CommandError(f"INIT_FROM={path}: has no classification head; give a fine-tuned MNLI checkpoint")
    return heads


def check_dictionary(state: dict, path: str, data_bin: Path) -> None:
    """The embedding rows must be the data's dictionary plus ``<mask>``, as the new model will build it."""
    from fairseq.data import Dictionary

    dict_path = data_bin / "input0" / "dict.txt"
    if not dict_path.is_file():
        raise FileNotFoundError(f"{dict_path}: not found (preprocess the task first)")
    size = len(Dictionary.load(str(dict_path))) + 1  # fairseq's sentence_prediction appends <mask>
    rows = next((state["model"][k].shape[0] for k in EMBED_KEYS if k in state["model"]), None)
    if rows is not None and rows != size:
        raise CommandError(f"INIT_FROM={path}: its embeddings have {rows} rows, {dict_path} gives {size} (with <mask>): "
                           "it was trained with another dictionary than this data")


PROG = "python -m fairseq_freelb.glue.init_from"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="the fine-tuned MNLI checkpoint (INIT_FROM)")
    parser.add_argument("--task", required=True, help="the task that starts from it: RTE, MRPC or STS-B")
    parser.add_argument("--data-bin", required=True, help="that task's binarized folder")
    parser.add_argument("--out", required=True, help="the head-less copy to write (--restore-file of the run)")
    args = parser.parse_args(argv)
    task = get_task(args.task)
    if task.name == "MNLI":
        raise CommandError("INIT_FROM: MNLI itself starts from the pretrained model (ROBERTA_PATH)")
    if not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f"INIT_FROM={args.checkpoint}: no such file")
    state = load_checkpoint(args.checkpoint)
    heads = check_mnli(state, args.checkpoint)
    check_dictionary(state, args.checkpoint, Path(args.data_bin))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        import torch

        torch.save(strip_heads(state, str(args.checkpoint)), tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    dropped = ", ".join(f"{size}-class head {name!r}" for name, size in heads.items())
    new = "regression head" if task.regression else f"{task.num_classes}-class head ({', '.join(task.labels)})"
    print(f"INIT_FROM={args.checkpoint}: {task.name} starts from this fine-tuned MNLI model; its {dropped} is dropped "
          f"and {task.name}'s {new} starts from random initialisation ({out})", flush=True)
    return 0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


if __name__ == "__main__":
    sys.exit(run_command(PROG, main))
