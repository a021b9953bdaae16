"""``--fairseq OUT``: a checkpoint folder that stock fairseq loads without this plugin.

A fine-tuned checkpoint names the plugin in three places that stock fairseq cannot
resolve: ``--arch roberta_hf`` (converted BERT-family models), ``--criterion freelb_*``
and ``common.user_dir``. Stock ``RobertaModel.from_pretrained`` fails on the first with
``IndexError: Replacement index 1 out of range`` in ``fairseq/models/__init__.py``, and
fairseq does not import a saved ``user_dir``. The folder written here holds:

* ``model.pt``: the same weights under ``--arch roberta_base`` (``roberta_large`` for 24
  layers of 1024), ``--task sentence_prediction --criterion sentence_prediction``
  (multiple choice: ``--task masked_lm``; the ranking head loads as a classification head),
  no ``user_dir``, the BPE recorded with this folder's files, and only plain types in
  ``cfg`` (so torch's ``weights_only`` loading needs no allow-list);
* ``dict.txt`` and ``input0/dict.txt`` (the data's dictionary), ``label/dict.txt`` (the
  label names the checkpoint recorded, in head order, so fairseq's
  ``task.label_dictionary`` names the classes right), and the BPE files (``vocab.txt``, or
  ``encoder.json`` + ``vocab.bpe``).

**LayerNorm epsilon.** Stock RoBERTa builds every LayerNorm with eps = 1e-5 and has no flag
for it; ``roberta_hf`` models (BERT, MiniLM) use 1e-12. Rather than changing the function,
the weights are rescaled so that stock fairseq computes the same one: every LayerNorm input
is multiplied by a power of two c (token and position embeddings, attention output and
fc2 projections times c; q/k/v and fc1 weights divided by c; every LayerNorm's output times
c except the last). LayerNorm(c x; eps) = LayerNorm(x; eps / c^2), so with c = 4096 stock
fairseq's 1e-5 acts as 6e-13, next to 1e-12; scaling by a power of two is exact in floating
point. The encoder's final features and the classification head are unchanged; the
embeddings are c times larger, so do not continue FreeLB training from this folder (its
perturbation radius is measured on the embeddings), and the masked-LM head (tied to the
embeddings) is not meaningful. Continue training from the plugin's checkpoint instead.
"""

import json
import math
import shutil
from pathlib import Path
from typing import Dict, Optional

import torch

from fairseq_freelb.adapters.roberta_hf import FAIRSEQ_LAYER_NORM_EPS
from fairseq_freelb.convert_hf.staging import check_replaceable, staged_folder
from fairseq_freelb.convert_hf.vocabulary import bpe_flags
from fairseq_freelb.export_hf.folder import METADATA_FILE, label_names
from fairseq_freelb.export_hf.source import MULTIPLE_CHOICE, REGRESSION, ExportError, FineTuned, build_fairseq, read_checkpoint
from fairseq_freelb.export_hf.verification import PAIRS, QUESTIONS, SENTENCES, FairseqInputs
from fairseq_freelb.export_hf.vocabulary import WORDPIECE, Vocabulary, map_vocabulary
from fairseq_freelb.export_hf.weights import ENC, max_positions

STOCK_FILES = {"model.pt", "dict.txt", "input0", "label", "vocab.txt", "encoder.json", "vocab.bpe", METADATA_FILE}


def eps_scale(eps: float) -> float:
    """The power of two c with 1e-5 / c^2 closest to ``eps`` (1 when ``eps`` is fairseq's)."""
    if eps == FAIRSEQ_LAYER_NORM_EPS:
        return 1.0
    return 2.0 ** round(math.log2(math.sqrt(FAIRSEQ_LAYER_NORM_EPS / eps)))


def rescale(weights: Dict[str, torch.Tensor], c: float) -> Dict[str, torch.Tensor]:
    """The weights under which stock LayerNorms (eps 1e-5) compute eps 1e-5 / c^2 (see the module docstring)."""
    out = {k: v.clone() for k, v in weights.items()}
    if c == 1.0:
        return out
    layers = sorted({int(k.split(".")[3]) for k in out if k.startswith(ENC + "layers.")})
    times_c = [ENC + "embed_tokens.weight", ENC + "embed_positions.weight", "encoder.lm_head.weight",
               ENC + "layernorm_embedding.weight", ENC + "layernorm_embedding.bias"]
    over_c = []
    for i in layers:
        layer = f"{ENC}layers.{i}."
        over_c += [layer + f"self_attn.{p}_proj.weight" for p in "qkv"] + [layer + "fc1.weight"]
        times_c += [layer + f"{m}.{p}" for m in ("self_attn.out_proj", "fc2", "self_attn_layer_norm") for p in ("weight", "bias")]
        if i != layers[-1]:  # the last LayerNorm gives the features: unchanged
            times_c += [layer + "final_layer_norm.weight", layer + "final_layer_norm.bias"]
    for key in times_c:
        if key in out:
            out[key] = out[key] * c
    for key in over_c:
        out[key] = out[key] / c
    return out


def stock_arch(weights: Dict[str, torch.Tensor]) -> str:
    layers = len({k.split(".")[3] for k in weights if k.startswith(ENC + "layers.")})
    dim = weights[ENC + "embed_tokens.weight"].shape[1]
    return "roberta_large" if (layers, dim) == (24, 1024) else "roberta_base"


def _stock_cfg(fine_tuned: FineTuned, vocabulary: Vocabulary, arch: str, final_dir: Path) -> dict:
    """The checkpoint's ``cfg``, built by fairseq's own parser for stock task, criterion and architecture."""
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from omegaconf import OmegaConf

    if vocabulary.kind == WORDPIECE:
        bpe = {"bpe": "bert", "bpe_vocab_file": "vocab.txt", "bpe_cased": not vocabulary.lowercase}
    else:
        bpe = {"bpe": "gpt2", "gpt2_encoder_json": "encoder.json", "gpt2_vocab_bpe": "vocab.bpe"}
    argv = [str(final_dir), "--arch", arch, "--max-positions", str(max_positions(fine_tuned)), "--cpu",
            *bpe_flags(final_dir, bpe)]
    if fine_tuned.kind == MULTIPLE_CHOICE:
        argv += ["--task", "masked_lm", "--criterion", "masked_lm"]
    else:
        layout = fine_tuned.layout
        argv += ["--task", "sentence_prediction", "--criterion", "sentence_prediction",
                 "--num-classes", str(fine_tuned.num_outputs), "--classification-head-name", fine_tuned.head_name]
        argv += ["--init-token", str(layout.init)] if layout.init is not None else []
        argv += ["--separator-token", str(layout.separator)] if layout.separator is not None else []
        argv += ["--regression-target"] if fine_tuned.kind == REGRESSION else []
    args = options.parse_args_and_arch(options.get_training_parser(), input_args=argv)
    cfg = OmegaConf.to_container(convert_namespace_to_omegaconf(args), resolve=True, enum_to_str=True)
    # cfg.model of a legacy architecture is an argparse.Namespace: stored as a dict of its fields, with the
    # fine-tuned values (sizes, dropouts), so torch's weights_only loading needs no allow-list.
    stock = dict(vars(cfg["model"]))
    model = {key: fine_tuned.model_cfg.get(key, value) for key, value in stock.items()}
    model.update(_name=arch, arch=arch, data=str(final_dir), user_dir=None, task=stock["task"],
                 criterion=stock["criterion"], load_checkpoint_heads=True)
    cfg["model"] = model
    return cfg


def _check_plain(value, where: str = "cfg") -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _check_plain(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(value, (str, int, float, bool, type(None), torch.Tensor)):
        raise ExportError(f"{where}: a {type(value).__name__} would need torch's weights_only allow-list")


def _write(fine_tuned: FineTuned, vocabulary: Vocabulary, names, staging: Path, final_dir: Path) -> dict:
    arch = stock_arch(fine_tuned.weights)
    c = eps_scale(fine_tuned.layer_norm_eps)
    shutil.copyfile(fine_tuned.dictionary_path, staging / "dict.txt")
    (staging / "input0").mkdir()
    shutil.copyfile(fine_tuned.dictionary_path, staging / "input0" / "dict.txt")
    if names is not None:
        (staging / "label").mkdir()
        (staging / "label" / "dict.txt").write_text("".join(f"{n} 1\n" for n in names), encoding="utf-8")
    if vocabulary.kind == WORDPIECE:
        shutil.copyfile(vocabulary.vocab_file, staging / "vocab.txt")
    else:
        shutil.copyfile(vocabulary.bpe["gpt2_encoder_json"], staging / "encoder.json")
        shutil.copyfile(vocabulary.bpe["gpt2_vocab_bpe"], staging / "vocab.bpe")
    cfg = _stock_cfg(fine_tuned, vocabulary, arch, final_dir)
    _check_plain(cfg)
    state = {
        "args": None,
        "cfg": cfg,
        "model": rescale(fine_tuned.weights, c),
        "criterion": {},
        "optimizer_history": [{"criterion_name": "SentencePredictionCriterion", "optimizer_name": "None",
                               "lr_scheduler_state": {}, "num_updates": 0}],
        "task_state": {},
        "extra_state": {"exported_from": str(fine_tuned.path.resolve())},
        "last_optimizer_state": None,
    }
    torch.save(state, staging / "model.pt")
    return {"arch": arch, "scale": c, "effective_layer_norm_eps": FAIRSEQ_LAYER_NORM_EPS / c ** 2}


def compare(fine_tuned: FineTuned, plugin_model, dictionary, vocabulary: Vocabulary, folder: Path) -> dict:
    """Logits of the stock checkpoint in ``folder`` against the plugin's model, on the verification samples."""
    from fairseq import checkpoint_utils

    (stock,), _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(folder / "model.pt")], arg_overrides={"data": str(folder)})
    stock.eval()
    inputs = FairseqInputs(fine_tuned, dictionary, vocabulary)
    if fine_tuned.kind == MULTIPLE_CHOICE:
        rows = [inputs.encode(q, c) for q, choices in QUESTIONS for c in choices]
    else:
        rows = [inputs.encode(s) for s in SENTENCES] + [inputs.encode(a, b) for a, b in PAIRS]
        rows = [r for r in rows if len(r) <= max_positions(fine_tuned)]
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width), dictionary.pad(), dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = torch.tensor(r)
    with torch.no_grad():
        ours, _ = plugin_model(tokens, features_only=True, classification_head_name=fine_tuned.head_name)
        theirs, _ = stock(tokens, features_only=True, classification_head_name=fine_tuned.head_name)
    if fine_tuned.kind == MULTIPLE_CHOICE:
        ours, theirs = ours.view(len(QUESTIONS), -1), theirs.view(len(QUESTIONS), -1)
    agree = len(ours) if fine_tuned.kind == REGRESSION else int((ours.argmax(-1) == theirs.argmax(-1)).sum())
    return {"rows": len(rows), "max_abs_diff": (ours - theirs).abs().max().item(),
            "predicted_labels_equal": f"{agree}/{len(ours)}", "agree": agree == len(ours)}


def export_stock(checkpoint, out_dir, data: Optional[str] = None, tolerance: float = 1e-5,
                 trust_label_dict: bool = False) -> dict:
    """Write ``out_dir`` for stock fairseq aside, compare it with the plugin's model, move it into place."""
    out_dir = Path(out_dir).resolve()
    check_replaceable(out_dir, STOCK_FILES, "an export", ExportError)
    fine_tuned = read_checkpoint(checkpoint, data)
    plugin_model, task = build_fairseq(fine_tuned)
    names = label_names(fine_tuned, task, trust_label_dict)
    vocabulary = map_vocabulary(fine_tuned, task.source_dictionary)
    with staged_folder(out_dir, ExportError) as staging:
        meta = {"source": str(fine_tuned.path.resolve()), "for": "stock fairseq (RobertaModel.from_pretrained)",
                "head": {"name": fine_tuned.head_name, "kind": fine_tuned.kind, "labels": names},
                "layer_norm_eps": fine_tuned.layer_norm_eps}
        meta.update(_write(fine_tuned, vocabulary, names, staging, out_dir))
        record = compare(fine_tuned, plugin_model, task.source_dictionary, vocabulary, staging)
        if not record["max_abs_diff"] <= tolerance or not record.pop("agree"):
            raise ExportError(f"{out_dir / 'model.pt'}: verification failed: max |stock fairseq - plugin| of the logits "
                              f"is {record['max_abs_diff']:.3g} (tolerance {tolerance:g}), predicted labels equal "
                              f"{record['predicted_labels_equal']}; nothing was written to {out_dir}")
        meta.update(verified=True, verification={**record, "tolerance": tolerance})
        (staging / METADATA_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return meta
