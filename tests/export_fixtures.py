"""Fine-tuned checkpoints for the export tests, built without a training run.

:func:`save_finetuned` builds the task, model, criterion and trainer exactly as
``fairseq-train`` does (fairseq's parser and registries, the plugin's criteria, which
record the label names in the task state) and saves with ``Trainer.save_checkpoint``, the
call ``fairseq-train`` makes: the file has every field a trained checkpoint has. The
weights are perturbed everywhere (heads and LayerNorms included), so a wrong mapping shows.
The training runs themselves are in the slow round-trip tests.
"""

import json
import shutil
from pathlib import Path
from typing import Sequence

import torch

from hf_fixtures import SENTENCES

GPT2_TEXTS = SENTENCES + [
    "The film is a charming, funny and deeply moving portrait of a family.",
    "A tedious, overlong mess that squanders its talented cast.",
    "It's not great -- but it isn't awful, either (3/5).",
    "Überraschend gut! Naïve café owners meet 42 robots in São Paulo.",
]
TINY = ["--encoder-layers", "2", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
        "--encoder-attention-heads", "4", "--max-positions", "64"]


def save_finetuned(argv: Sequence[str], path: Path, restore: Path = None, seed: int = 1) -> Path:
    """A checkpoint as fairseq-train saves it (see the module docstring); ``restore``: start from this model.pt."""
    from fairseq import checkpoint_utils, options, tasks, utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.trainer import Trainer

    import fairseq_freelb  # noqa: F401

    args = options.parse_args_and_arch(options.get_training_parser(), [str(a) for a in argv])
    cfg = convert_namespace_to_omegaconf(args)
    utils.import_user_module(cfg.common)
    torch.manual_seed(seed)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    if restore is not None:
        missing, _ = model.load_state_dict(checkpoint_utils.load_checkpoint_to_cpu(str(restore))["model"], strict=False)
        assert all(k.startswith("classification_heads.") for k in missing), missing
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith("embed_positions.weight"):  # its padding row stays zero, as training keeps it
                p.add_(0.05 * torch.randn(p.shape, generator=generator))
    trainer = Trainer(cfg, task, model, criterion)
    path.parent.mkdir(parents=True, exist_ok=True)
    trainer.consolidate_optimizer()  # as checkpoint_utils.save_checkpoint does first
    trainer.save_checkpoint(str(path), {})
    return path


def label_data(folder: Path, dictionary: Path, labels: Sequence[str] = ()) -> Path:
    """The two files ``--task sentence_prediction`` reads at setup: input0/dict.txt and label/dict.txt."""
    (folder / "input0").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(dictionary, folder / "input0" / "dict.txt")
    if labels:
        (folder / "label").mkdir(parents=True, exist_ok=True)
        (folder / "label" / "dict.txt").write_text("".join(f"{lab} 1\n" for lab in labels))
    return folder


def gpt2_dictionary(path: Path, texts: Sequence[str], full: bool = False) -> Path:
    """A RoBERTa-style dict.txt: the GPT-2 ids of ``texts`` by count (``full``: then every other GPT-2 id too)."""
    from collections import Counter

    from fairseq.data.encoders.gpt2_bpe_utils import get_encoder

    from fairseq_freelb.resources import gpt2_bpe_files

    encoder_json, vocab_bpe = gpt2_bpe_files()
    encoder = get_encoder(str(encoder_json), str(vocab_bpe))
    counts = Counter(i for text in texts for i in encoder.encode(text))
    ids = [i for i, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    if full:
        seen = set(ids)
        ids += [i for i in range(len(json.loads(Path(encoder_json).read_text()))) if i not in seen]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i} {counts.get(i, 0)}\n" for i in ids))
    return path


def sentence_prediction_argv(data: Path, save_dir: Path, classes: int, arch: Sequence[str], extra: Sequence[str] = ()):
    return [
        str(data), "--user-dir", "fairseq_freelb", "--task", "sentence_prediction",
        "--criterion", "freelb_sentence_prediction", "--num-classes", str(classes),
        "--init-token", "0", "--separator-token", "2", *arch,
        "--optimizer", "adam", "--lr", "1e-5", "--cpu", "--save-dir", str(save_dir),
        "--adv-steps", "2", "--adv-lr", "0.1", "--adv-init-mag", "0.1", *extra,
    ]


def wordpiece_glue_bin(task_name: str, splits, model_dir: Path, out: Path) -> Path:
    """``<TASK>-bin`` as ``glue.preprocess`` lays it out, but WordPiece-encoded with a converted model's BPE.

    ``splits``: split -> list of (sentences, label or None). ``glue.preprocess`` encodes with
    GPT-2's BPE only; a converted BERT-family model needs its own vocabulary, so the text goes
    through the folder's ``--bpe bert`` and ``fairseq-preprocess --srcdict <converted>/dict.txt``.
    Writes input0/ (input1/), label/ (GLUE's label order), index/<split>.index, meta.json.
    """
    import argparse

    from fairseq.data import encoders

    from fairseq_freelb import convert_hf
    from fairseq_freelb.glue.benchmark_tasks import get_task
    from fairseq_freelb.glue.binarize import write_label_dict
    from utils import preprocess

    task = get_task(task_name)
    meta = json.loads((model_dir / convert_hf.METADATA_FILE).read_text())
    bpe = encoders.build_bpe(argparse.Namespace(**convert_hf.bpe_paths(model_dir, meta["bpe"])))
    dest, raw = out / f"{task.name}-bin", out / f"raw-{task.name}"
    raw.mkdir(parents=True)
    inputs = len(next(iter(splits.values()))[0][0])
    for split, examples in splits.items():
        for i in range(inputs):
            (raw / f"input{i}.{split}").write_text("".join(bpe.encode(s[i]) + "\n" for s, _ in examples))
        if examples[0][1] is not None:
            (raw / f"label.{split}").write_text("".join(label + "\n" for _, label in examples))
        else:
            (dest / "index").mkdir(parents=True, exist_ok=True)
            (dest / "index" / f"{split}.index").write_text("".join(f"{k}\n" for k in range(len(examples))))
    for i in range(inputs):
        preprocess(raw / f"input{i}", dest / f"input{i}", model_dir / "dict.txt", splits=tuple(splits))
    write_label_dict(task, [label for _, label in splits["train"]], raw / "label.dict.txt")
    labeled = tuple(s for s, examples in splits.items() if examples[0][1] is not None)
    preprocess(raw / "label", dest / "label", raw / "label.dict.txt", splits=labeled)
    (dest / "meta.json").write_text(json.dumps({"task": task.name, "labels": list(task.labels), "label_order": "glue"}))
    return dest


# Stock fairseq in a fresh interpreter that never imports the plugin: labels and logits of each text or pair.
STOCK_SCRIPT = r"""
import json, sys
from fairseq.models.roberta import RobertaModel
folder, pairs = sys.argv[1], json.load(open(sys.argv[2]))
roberta = RobertaModel.from_pretrained(folder, checkpoint_file="model.pt").eval()  # nothing but the folder
labels = roberta.task.label_dictionary
out = []
for a, b in pairs:
    tokens = roberta.encode(a) if b is None else roberta.encode(a, b)
    logits = roberta.predict("sentence_classification_head", tokens, return_logits=True)[0]
    out.append([labels.string([int(logits.argmax()) + labels.nspecial]), logits.tolist()])
assert not [m for m in sys.modules if m.startswith("fairseq_freelb")], "the plugin was imported"
print(json.dumps(out))
"""


def stock_predictions(folder: Path, pairs, cwd: Path):
    """``[[label, logits], ...]`` from :data:`STOCK_SCRIPT` run with this interpreter in ``cwd``."""
    import subprocess
    import sys

    texts = cwd / "stock_inputs.json"
    texts.write_text(json.dumps([list(p) for p in pairs]))
    proc = subprocess.run([sys.executable, "-c", STOCK_SCRIPT, str(folder), str(texts)], cwd=cwd,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
