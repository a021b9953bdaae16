"""The converted folder as a whole: built aside, verified, then moved into place; and read back.

``convert_folder`` writes everything into a temporary folder next to ``OUT_DIR``
(``.<name>.<pid>.<random>.tmp``), verifies it there, records the verification in
``convert_hf.json``, and only then swaps it in. A failed conversion or
verification leaves ``OUT_DIR`` exactly as it was (an earlier good conversion
survives). ``load_converted`` and ``train_args`` accept only a folder whose
``convert_hf.json`` records a passed verification.
"""

import json
import logging
from pathlib import Path
from typing import List

from fairseq_freelb import checkpoint
from fairseq_freelb.convert_hf.mapping import convert
from fairseq_freelb.convert_hf.reading import ConversionError, read_hf_folder, read_json
from fairseq_freelb.convert_hf.staging import check_replaceable, staged_folder
from fairseq_freelb.convert_hf.verification import METADATA_FILE, verify
from fairseq_freelb.convert_hf.vocabulary import bpe_files, bpe_flags, bpe_paths
from fairseq_freelb.convert_hf.writing import write_output

logger = logging.getLogger("fairseq_freelb.convert_hf")

# Every file a conversion writes; an existing OUT_DIR holding anything else is not replaced.
OUTPUT_FILES = {"model.pt", "dict.txt", "vocab.txt", "encoder.json", "vocab.bpe", METADATA_FILE}


def convert_folder(hf_dir, out_dir, tolerance: float = 1e-4, check: bool = True) -> dict:
    """Convert, write aside, verify, move into ``out_dir``; returns the metadata of ``OUT_DIR/convert_hf.json``."""
    out_dir = Path(out_dir).resolve()
    check_replaceable(out_dir, OUTPUT_FILES, "a conversion", ConversionError)
    ckpt = read_hf_folder(hf_dir)
    logger.info(f"{ckpt.folder}: {ckpt.config['model_type']} from {ckpt.weights_file}, {len(ckpt.tokens)} tokens")
    conversion = convert(ckpt)
    for note in conversion.notes:
        logger.info(note)
    meta = {
        "source": str(ckpt.folder),
        "model_type": ckpt.config["model_type"],
        "fairseq_args": conversion.model_args,
        "bpe": conversion.bpe_args,
        "source_ids": conversion.source_ids,
        "notes": conversion.notes,
        "verified": False,
    }
    with staged_folder(out_dir, ConversionError) as staging:
        write_output(ckpt, conversion, staging, final_dir=out_dir)
        (staging / METADATA_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        if check:
            try:
                diff = verify(ckpt.folder, staging, tolerance, name=out_dir / "model.pt")
            except ConversionError as exc:
                raise ConversionError(f"{exc}; nothing was written to {out_dir}") from None
            meta.update(verified=True, max_abs_diff=diff, tolerance=tolerance)
            logger.info(f"verified: max |fairseq - transformers| of the final hidden states = {diff:.3g} (<= {tolerance:g})")
        (staging / METADATA_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return meta


def read_verified(out_dir, allow_unverified: bool = False) -> dict:
    """``OUT_DIR/convert_hf.json`` of a complete, verified conversion; a one-line ConversionError otherwise."""
    out_dir = Path(out_dir).resolve()
    meta_path = out_dir / METADATA_FILE
    if not meta_path.is_file():
        raise ConversionError(f"{meta_path}: missing; {out_dir} is not a folder written by python -m fairseq_freelb.convert_hf")
    meta = read_json(meta_path)
    # Folders written before conversions were atomic mark a passed verification only by max_abs_diff.
    verified = meta.get("verified", "max_abs_diff" in meta) and meta.get("max_abs_diff", float("inf")) <= meta.get(
        "tolerance", float("inf")
    )
    if not verified and not allow_unverified:
        raise ConversionError(
            f"{meta_path}: this conversion was not verified against transformers (written with --no-verify, or its "
            "verification failed); convert again without --no-verify, or pass allow_unverified=True"
        )
    for name in ["model.pt", "dict.txt", *bpe_files(meta["bpe"])]:
        if not (out_dir / name).is_file():
            raise ConversionError(f"{out_dir / name}: missing from the converted folder; convert again")
    return meta


def load_converted(out_dir, allow_unverified: bool = False, **kwargs):
    """``RobertaModel.from_pretrained`` on a verified converted folder, with its BPE files wired in, in eval mode.

    ``RobertaModel.from_pretrained`` defaults to ``bpe="gpt2"`` with files from the internet;
    this passes the converted folder's own BPE settings instead. The model comes back in
    eval mode (dropout off), so features are deterministic; call ``.train()`` to fine-tune.
    """
    from fairseq.models.roberta import RobertaModel

    checkpoint.allow_fairseq_checkpoints()
    out_dir = Path(out_dir).resolve()
    meta = read_verified(out_dir, allow_unverified)
    overrides = bpe_paths(out_dir, meta["bpe"])
    overrides.update(kwargs)
    return RobertaModel.from_pretrained(str(out_dir), checkpoint_file="model.pt", **overrides).eval()


def train_args(out_dir, allow_unverified: bool = False) -> List[str]:
    """The ``fairseq-train`` flags that rebuild the converted architecture, name its BPE, and ``--restore-file``."""
    out_dir = Path(out_dir).resolve()
    meta = read_verified(out_dir, allow_unverified)
    return [*meta["fairseq_args"], *bpe_flags(out_dir, meta["bpe"]), "--restore-file", str(out_dir / "model.pt"),
            "--reset-optimizer", "--reset-dataloader", "--reset-meters"]
