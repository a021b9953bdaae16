"""``--restore-file``: the pretrained model, the architecture flags that rebuild it, and the checks against the data.

- a ``convert_hf`` folder (``convert_hf.json`` inside): its recorded
  ``fairseq-train`` flags (:func:`fairseq_freelb.convert_hf.train_args`);
- a fairseq checkpoint (``roberta.large/model.pt``, or its folder): the
  architecture read from the checkpoint's own configuration (arch, layers,
  widths, heads, positions);
- nothing: random initialisation, announced in one warning line; the
  architecture comes from the fairseq flags after ``--`` (default
  ``--arch roberta_base``). The test suite trains tiny models this way.

A pretrained model must fit the data: its token embedding has one row per
symbol of the data's dictionary plus ``<mask>`` (and, when a ``dict.txt`` sits
beside the checkpoint, the same symbols in the same order), and its positions
must cover the length the data was cut to at preprocessing. Otherwise it is
refused in one line before anything is trained.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from fairseq_freelb import checkpoint, convert_hf
from fairseq_freelb.commands import CommandError
from fairseq_freelb.experiment.folder import TaskFolder
from fairseq_freelb.multiseed.store import file_digest

logger = logging.getLogger("fairseq_freelb.experiment")

ARCH_FIELDS = ("encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_attention_heads",
               "max_positions")
RESET = ("--reset-optimizer", "--reset-dataloader", "--reset-meters")


@dataclass(frozen=True)
class Model:
    flags: Tuple[str, ...]  # architecture and restore flags for fairseq-train
    description: str  # for the table's header
    weights: str  # sha256 of the weights ("random" for random initialisation)

    @property
    def fingerprint(self) -> dict:
        """The weights' digest and the architecture flags; not the checkpoint's path, so a moved file is the same."""
        flags = list(self.flags)
        if "--restore-file" in flags:
            at = flags.index("--restore-file")
            del flags[at:at + 2]
        return {"weights": self.weights, "flags": flags}


def data_dictionary(folder: TaskFolder) -> Path:
    return folder.path / ("input0" if folder.kind == "glue" else "") / "dict.txt"


def _symbols(path: Path) -> List[str]:
    return [line.split(" ", 1)[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _field(cfg, name: str):
    if cfg is None:
        return None
    return cfg.get(name) if hasattr(cfg, "get") else getattr(cfg, name, None)


def _checkpoint_model(path: Path, folder: TaskFolder) -> Model:
    state = checkpoint.load_checkpoint(str(path))
    # fairseq >= 0.10 saves cfg (a dict, its "model" part holding the architecture); roberta.large's model.pt and
    # other older checkpoints an argparse Namespace "args".
    cfg = _field(state.get("cfg"), "model") or (vars(state["args"]) if state.get("args") is not None else None)
    arch = _field(cfg, "arch") or _field(cfg, "_name")
    if not arch:
        raise CommandError(f"--restore-file {path}: its configuration names no architecture; pass the architecture "
                           "flags after -- and a checkpoint written by fairseq")
    flags = ["--arch", str(arch)]
    for name in ARCH_FIELDS:
        value = _field(cfg, name)
        if value is not None:
            flags += [f"--{name.replace('_', '-')}", str(value)]
    weights = state.get("model", {}).get("encoder.sentence_encoder.embed_tokens.weight")
    data_dict = data_dictionary(folder)
    if weights is not None:
        expected = len(_symbols(data_dict)) + 5  # <s> <pad> </s> <unk> + dict.txt + <mask>
        if weights.shape[0] != expected:
            raise CommandError(f"--restore-file {path}: its token embedding has {weights.shape[0]} rows, the data's "
                               f"{data_dict} gives {expected} (with the 4 special symbols and <mask>): the data was "
                               "preprocessed with another dictionary; preprocess it with the model's dict.txt")
    beside = path.parent / "dict.txt"
    if beside.is_file() and _symbols(beside) != _symbols(data_dict):
        raise CommandError(f"--restore-file {path}: {beside} differs from the data's {data_dict}; preprocess the data "
                           "with the model's dict.txt")
    positions = _field(cfg, "max_positions")
    if positions is not None and int(positions) < folder.max_positions:
        raise CommandError(f"--restore-file {path}: the model has {positions} positions, the data was preprocessed "
                           f"for {folder.max_positions}; preprocess it with --max-positions {positions}")
    return Model(tuple(flags) + ("--restore-file", str(path.resolve()), *RESET), f"{path} ({arch})",
                 file_digest(path))


def _converted_model(path: Path, folder: TaskFolder) -> Model:
    try:
        flags = convert_hf.train_args(path)
    except Exception as exc:  # ConversionError and friends: already one line naming the file
        raise CommandError(f"--restore-file {path}: {exc}") from None
    if _symbols(path / "dict.txt") != _symbols(data_dictionary(folder)):
        raise CommandError(f"--restore-file {path}: its dict.txt differs from the data's {data_dictionary(folder)}: the "
                           "data was preprocessed with another vocabulary; preprocess it with this model's dictionary")
    return Model(tuple(flags), f"{path} (converted from Hugging Face)", file_digest(path / "model.pt"))


def resolve(restore_file: Optional[Path], folder: TaskFolder, extra: Sequence[str]) -> Model:
    """The model of ``--restore-file`` (or random initialisation) for ``folder``; see the module docstring."""
    if restore_file is None:
        arch = list(extra)[list(extra).index("--arch") + 1] if "--arch" in extra else "roberta_base"
        flags = () if "--arch" in extra else ("--arch", "roberta_base")
        if "--max-positions" not in extra:
            flags += ("--max-positions", str(folder.max_positions))
        logger.warning(f"no --restore-file: training starts from random weights ({arch}); the figures say nothing "
                       "about a pretrained model (give --restore-file roberta.large/model.pt or a convert_hf folder)")
        return Model(flags, f"random initialisation ({arch})", "random")
    restore_file = Path(restore_file)
    if (restore_file / "convert_hf.json").is_file():
        return _converted_model(restore_file, folder)
    if restore_file.is_dir():
        restore_file = restore_file / "model.pt"
    if not restore_file.is_file():
        raise CommandError(f"--restore-file {restore_file}: no such file (give roberta.large/model.pt, its folder, or "
                           "a python -m fairseq_freelb.convert_hf folder)")
    return _checkpoint_model(restore_file, folder)
