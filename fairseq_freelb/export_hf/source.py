"""Reading a fine-tuned fairseq checkpoint: its encoder's shape, its head, its input layout, its data.

Every refusal is an :class:`ExportError` whose one line names the file at fault.
"""

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import torch

from fairseq_freelb import checkpoint
from fairseq_freelb.adapters.roberta_hf import FAIRSEQ_LAYER_NORM_EPS
from fairseq_freelb.commands import CommandError

CLASSIFICATION, REGRESSION, MULTIPLE_CHOICE = "classification", "regression", "multiple_choice"

# criterion -> (head kind, the criterion config field naming the head)
PREDICTION_CRITERIA = ("sentence_prediction", "freelb_sentence_prediction")
RANKING_CRITERIA = ("sentence_ranking", "freelb_sentence_ranking")
# tasks whose inputs export_hf can reproduce -> where the task reads its dictionary
DICTIONARY_OF_TASK = {
    "sentence_prediction": "input0/dict.txt",
    "freelb_sentence_prediction": "input0/dict.txt",
    "sentence_ranking": "input0/dict.txt",
    "freelb_sentence_ranking": "input0/dict.txt",
    "multiple_choice": "dict.txt",
}
# fairseq --activation-fn -> Hugging Face hidden_act (fairseq's gelu is the exact erf GELU)
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_accurate": "gelu_new", "relu": "relu"}


class ExportError(CommandError):
    """A checkpoint that cannot be exported faithfully, or an output that cannot be written; names the file."""


@dataclass
class Layout:
    """How the task lays one or two texts out as fairseq indices: ``[init] A </s> [separator] B </s>``."""

    init: Optional[int]  # fairseq index before the first text (``--init-token``), None: nothing
    separator: Optional[int]  # fairseq index before the second text (``--separator-token``), None: nothing
    first: str  # what the first text is, in the task's words
    second: str  # what the second text is


@dataclass
class FineTuned:
    """What the export needs to know about a fine-tuned checkpoint (read by :func:`read_checkpoint`)."""

    path: Path
    state: Dict[str, object]  # fairseq's checkpoint: cfg, model, task_state, ...
    model_cfg: Dict[str, object]  # the architecture's arguments
    task_name: str
    criterion_name: str
    head_name: str
    kind: str  # CLASSIFICATION, REGRESSION or MULTIPLE_CHOICE
    num_outputs: int
    layout: Layout
    data_dir: Path
    dictionary_path: Path
    layer_norm_eps: float
    label_names: Optional[List[str]] = None

    @property
    def weights(self) -> Dict[str, torch.Tensor]:
        return self.state["model"]

    @property
    def bpe_cfg(self) -> Optional[Dict[str, object]]:
        """The ``cfg.bpe`` that ``fairseq-train --bpe ...`` recorded, or None."""
        bpe = _section(self.state.get("cfg"), "bpe")
        return bpe or None

    @property
    def restore_file(self) -> Optional[str]:
        return _section(self.state.get("cfg"), "checkpoint").get("restore_file")


def _section(cfg, name: str) -> Dict[str, object]:
    """One section of a checkpoint's cfg as a plain dict (legacy architectures keep an argparse.Namespace)."""
    if cfg is None:
        return {}
    value = cfg.get(name) if hasattr(cfg, "get") else getattr(cfg, name, None)
    if value is None:
        return {}
    if isinstance(value, argparse.Namespace):
        return dict(vars(value))
    from omegaconf import OmegaConf

    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return dict(value)


def load_state(path: Path) -> Dict[str, object]:
    """fairseq's own reading of the checkpoint (cfg upgraded as fairseq upgrades it)."""
    from fairseq import checkpoint_utils

    if not path.is_file():
        raise ExportError(f"{path}: {checkpoint.describe_file(path) or 'not a file'}")
    checkpoint.allow_fairseq_checkpoints()
    return checkpoint_utils.load_checkpoint_to_cpu(str(path))


def _heads(weights: Dict[str, torch.Tensor]) -> List[str]:
    return sorted({k.split(".")[1] for k in weights if k.startswith("classification_heads.") and k.endswith("out_proj.weight")})


def _check_architecture(path: Path, model: Dict[str, object], weights: Dict[str, torch.Tensor]) -> float:
    """Refuse RoBERTa variants that BERT/RoBERTa in transformers cannot compute; returns the LayerNorm epsilon."""
    if "encoder.sentence_encoder.embed_tokens.weight" not in weights:
        raise ExportError(f"{path}: not a fairseq RoBERTa checkpoint (no encoder.sentence_encoder.embed_tokens.weight)")
    refusals = [
        (model.get("encoder_normalize_before"), "pre-LayerNorm layers (--encoder-normalize-before)"),
        (not model.get("layernorm_embedding", True), "no embedding LayerNorm (--no-layernorm-embedding)"),
        (not model.get("encoder_learned_pos", True), "sinusoidal positions"),
        (model.get("no_token_positional_embeddings"), "no positional embeddings"),
        (not model.get("no_scale_embedding", True), "scaled token embeddings"),
        (model.get("spectral_norm_classification_head"), "a spectrally normalised head"),
        (model.get("quant_noise_pq", 0) or model.get("quant_noise_scalar", 0), "quantization noise"),
        (model.get("encoder_layers_to_keep"), "pruned layers (--encoder-layers-to-keep)"),
    ]
    for refused, what in refusals:
        if refused:
            raise ExportError(f"{path}: {what} has no Hugging Face BERT/RoBERTa equivalent; not exported")
    activation = model.get("activation_fn", "gelu")
    if activation not in HF_ACTIVATIONS:
        raise ExportError(f"{path}: --activation-fn {activation} has no Hugging Face equivalent "
                          f"(supported: {', '.join(HF_ACTIVATIONS)})")
    if model.get("pooler_activation_fn", "tanh") != "tanh":
        raise ExportError(f"{path}: --pooler-activation-fn {model['pooler_activation_fn']}: the Hugging Face pooler is tanh")
    return float(model.get("layer_norm_eps", FAIRSEQ_LAYER_NORM_EPS))


def _head(path: Path, criterion: Dict[str, object], task: Dict[str, object], weights) -> tuple:
    """(head name, kind, number of outputs), from the criterion that trained the head."""
    name = criterion.get("_name")
    heads = _heads(weights)
    if not heads:
        raise ExportError(f"{path}: holds no classification head, so it is not a fine-tuned checkpoint (a pretrained "
                          "or converted model.pt?); export a checkpoint written by fairseq-train --task sentence_prediction "
                          "or multiple_choice")
    if name in PREDICTION_CRITERIA:
        head = criterion.get("classification_head_name", "sentence_classification_head")
        regression = bool(criterion.get("regression_target") or task.get("regression_target"))
        kind = REGRESSION if regression else CLASSIFICATION
    elif name in RANKING_CRITERIA:
        head = criterion.get("ranking_head_name", "sentence_classification_head")
        kind = MULTIPLE_CHOICE
    else:
        raise ExportError(f"{path}: its head was trained by --criterion {name}, whose outputs export_hf does not know "
                          f"(known: {', '.join(PREDICTION_CRITERIA + RANKING_CRITERIA)})")
    if head not in heads:
        raise ExportError(f"{path}: has no head named {head!r} (heads: {', '.join(heads)})")
    outputs = int(weights[f"classification_heads.{head}.out_proj.weight"].shape[0])
    dense = weights[f"classification_heads.{head}.dense.weight"]
    if dense.shape[0] != dense.shape[1]:
        raise ExportError(f"{path}: head {head!r} has an inner dimension {dense.shape[0]} != the hidden size "
                          f"{dense.shape[1]}; the Hugging Face pooler is hidden x hidden")
    want = {REGRESSION: 1, MULTIPLE_CHOICE: 1}.get(kind)
    if (want is not None and outputs != want) or (kind == CLASSIFICATION and outputs < 2):
        raise ExportError(f"{path}: head {head!r} has {outputs} outputs, which a {kind} head cannot have")
    return head, kind, outputs


def _layout(path: Path, task_name: str, task: Dict[str, object]) -> Layout:
    if task_name in ("sentence_prediction", "freelb_sentence_prediction"):
        return Layout(task.get("init_token"), task.get("separator_token"), "the sentence (GLUE's first column)",
                      "the second sentence of a pair")
    if task_name in ("sentence_ranking", "freelb_sentence_ranking"):
        # fairseq's sentence_ranking: [init] option </s> [separator] input0 </s>
        return Layout(task.get("init_token"), task.get("separator_token"), "one candidate (input1..C)",
                      "the shared text of the question (input0)")
    # --task multiple_choice (mc/encoding.py): <s> Q: stem </s> A: choice </s>, or <s> context </s> stem choice </s>
    return Layout(0, None, "'Q: ' + the question (or the context)", "'A: ' + one choice (or the question and choice)")


def read_checkpoint(path, data: Optional[str] = None) -> FineTuned:
    """The fine-tuned checkpoint at ``path``; ``data`` replaces the data folder it was trained on."""
    path = Path(path)
    state = load_state(path)
    if "model" not in state or state.get("cfg") is None:
        raise ExportError(f"{path}: not a fairseq checkpoint written by fairseq-train (no model or cfg)")
    cfg = state["cfg"]
    model, task, criterion = _section(cfg, "model"), _section(cfg, "task"), _section(cfg, "criterion")
    weights = state["model"]
    eps = _check_architecture(path, model, weights)
    head, kind, outputs = _head(path, criterion, task, weights)
    task_name = task.get("_name") or model.get("task")
    if task_name not in DICTIONARY_OF_TASK:
        raise ExportError(f"{path}: trained with --task {task_name}, whose input layout export_hf does not know "
                          f"(known: {', '.join(DICTIONARY_OF_TASK)})")
    data_dir = Path(data if data is not None else str(task.get("data") or model.get("data") or ""))
    dictionary_path = data_dir / DICTIONARY_OF_TASK[task_name]
    task_state = state.get("task_state") or {}
    names = task_state.get("label_names") if isinstance(task_state, dict) else None
    return FineTuned(
        path=path, state=state, model_cfg=model, task_name=task_name, criterion_name=criterion.get("_name"),
        head_name=head, kind=kind, num_outputs=outputs, layout=_layout(path, task_name, task), data_dir=data_dir,
        dictionary_path=dictionary_path, layer_norm_eps=eps,
        label_names=[str(n) for n in names] if names is not None else None,
    )


def build_fairseq(fine_tuned: FineTuned):
    """The fairseq model (eval mode) and task of the checkpoint, read against its data folder.

    fairseq's own loader, as ``glue.predict`` uses it: the task re-reads the data's
    dictionaries and refuses a checkpoint whose label names or dictionary digest are
    not the data's (the plugin's tasks record both).
    """
    from fairseq import checkpoint_utils  # the plugin's tasks, criteria and roberta_hf: registered by the package

    if not fine_tuned.dictionary_path.is_file():
        raise ExportError(f"{fine_tuned.dictionary_path}: missing; pass --data DATA_BIN, the folder "
                          f"{fine_tuned.path} was fine-tuned on (its dictionary is needed to map the vocabulary)")
    (model,), _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(fine_tuned.path)], arg_overrides={"data": str(fine_tuned.data_dir)}
    )
    rows = model.encoder.sentence_encoder.embed_tokens.weight.shape[0]
    if len(task.source_dictionary) != rows:
        raise ExportError(f"{fine_tuned.dictionary_path}: {len(task.source_dictionary)} symbols with <mask>, but "
                          f"{fine_tuned.path} has {rows} token embeddings: not the dictionary it was trained with")
    return model.eval(), task
