"""Per-task settings of ``run_glue.py --recipe``: the paper's Hugging Face runs, each naming its source.

``albert-xxlarge-v2``: the official FreeLB Hugging Face launch script,
``huggingface-transformers/launch/run_glue.sh`` of github.com/zhuchen03/FreeLB
(the version with all eight tasks; its ``runexp`` columns adv_lr, adv_mag,
anorm, asteps, lr, bsize, grad_accu, hdp, adp, ts, ws, seed, wd are copied
row by row below), with the script's fixed ``--max_seq_length 512`` and
``--fp16`` (fp16 only where CUDA is available). These are the runs behind
Table 6 of Zhu et al. (ICLR 2020) (ALBERT-xxlarge-v2, GLUE dev). The script's
``--adv-steps`` counts passes exactly like ours (its loop makes adv_steps
forward/backward passes), so its K carries over unchanged.

``bert-base``: the paper reports BERT-base on the GLUE test sets (Table 2,
78.3 -> 79.4) but publishes neither a script nor per-task adversarial
settings for it. This preset is the BERT paper's GLUE fine-tuning (Devlin et
al. 2019, section 4.1: batch 32, 3 epochs, lr 2e-5 from its grid
{5e-5, 4e-5, 3e-5, 2e-5}; Google's run_classifier.py: max_seq_length 128,
10% linear warm-up) with the adversarial settings of the ALBERT launch script
for the same task: a starting point to tune from, not the paper's values.

Every value is only a default: a flag given on the command line wins.
"""

from typing import Dict, List

# task -> (adv_lr, adv_init_mag, adv_max_norm, adv_steps, lr, batch, grad_accu, hidden_dropout, attention_dropout,
#          max_steps, warmup_steps, seed, weight_decay): launch/run_glue.sh, one runexp line each.
ALBERT_LAUNCH_SCRIPT = {
    "SST-2": (1e-1, 6e-1, 0, 2, 1e-5, 32, 1, 0.1, 0, 20935, 1256, 42, 1e-2),
    "MRPC": (3e-2, 0, 0, 4, 2e-5, 16, 1, 0.1, 0, 800, 200, 42, 1e-2),
    "CoLA": (4e-2, 5e-2, 0, 3, 1e-5, 16, 1, 0.1, 0, 5336, 320, 42, 1e-2),
    "STS-B": (1e-1, 2e-1, 0, 3, 2e-5, 16, 1, 0.1, 0, 3598, 214, 42, 1e-2),
    "MNLI": (4e-2, 8e-2, 0, 3, 3e-5, 128, 1, 0.1, 0, 10000, 1000, 42, 1e-2),
    "QQP": (2e-1, 3.2e-1, 7e-1, 3, 5e-5, 128, 1, 0.1, 0.1, 14000, 1000, 42, 1e-2),
    "RTE": (1e-1, 0, 0, 3, 3e-5, 32, 1, 0.1, 0.1, 800, 200, 42, 1e-2),
    "QNLI": (5e-2, 1e-1, 0, 3, 1e-5, 8, 4, 0.1, 0, 33112, 1986, 42, 1e-2),
}
RECIPES = ("albert-xxlarge-v2", "bert-base")


def _adversarial(task: str) -> List[str]:
    alr, amag, anorm, asteps = ALBERT_LAUNCH_SCRIPT[task][:4]
    flags = ["--adv-steps", str(asteps), "--adv-lr", repr(alr)]
    # The flags at their defaults stay unset: an explicit 0 is the same setting.
    if amag:
        flags += ["--adv-init-mag", repr(amag)]
    if anorm:
        flags += ["--adv-max-norm", repr(anorm)]
    return flags


def recipe_flags(recipe: str, task: str, cuda: bool) -> List[str]:
    """The command-line flags of ``recipe`` for ``task`` (prepended to the user's, which win)."""
    if recipe == "none":
        return []
    if task not in ALBERT_LAUNCH_SCRIPT:
        known = ", ".join(ALBERT_LAUNCH_SCRIPT)
        raise KeyError(f"--recipe {recipe}: the official launch script has no {task} run (it has {known})")
    _, _, _, _, lr, batch, accu, hdp, adp, steps, warmup, seed, wd = ALBERT_LAUNCH_SCRIPT[task]
    if recipe == "albert-xxlarge-v2":
        return [
            *_adversarial(task), "--learning_rate", repr(lr), "--per_device_train_batch_size", str(batch),
            "--gradient_accumulation_steps", str(accu), "--hidden_dropout", repr(hdp), "--attention_dropout", repr(adp),
            "--max_steps", str(steps), "--warmup_steps", str(warmup), "--seed", str(seed), "--weight_decay", repr(wd),
            "--max_seq_length", "512", *(["--fp16"] if cuda else []),
        ]
    if recipe == "bert-base":
        return [
            *_adversarial(task), "--learning_rate", "2e-5", "--per_device_train_batch_size", "32",
            "--num_train_epochs", "3", "--warmup_steps", "0.1", "--max_seq_length", "128",
        ]
    raise KeyError(f"--recipe {recipe}: unknown (known: none, {', '.join(RECIPES)})")


SOURCES: Dict[str, str] = {
    "albert-xxlarge-v2": "github.com/zhuchen03/FreeLB huggingface-transformers/launch/run_glue.sh",
    "bert-base": "Devlin et al. 2019 section 4.1 (fine-tuning) + the ALBERT launch script's adversarial values",
}
