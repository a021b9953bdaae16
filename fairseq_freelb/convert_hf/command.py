"""``python -m fairseq_freelb.convert_hf HF_DIR OUT_DIR``: the command line."""

import argparse
import logging
import sys
import warnings
from pathlib import Path
from typing import Optional, Sequence

from fairseq_freelb.commands import run_command
from fairseq_freelb.convert_hf.folder import convert_folder, train_args

PROG = "convert_hf"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The command; expected failures raise :class:`~fairseq_freelb.convert_hf.reading.ConversionError` (see :func:`run`)."""
    parser = argparse.ArgumentParser(
        prog="python -m fairseq_freelb.convert_hf",
        description="Convert a Hugging Face BERT/RoBERTa folder into a fairseq RoBERTa checkpoint folder, and verify it.",
    )
    parser.add_argument("hf_dir", help="Hugging Face folder: config.json, model.safetensors or pytorch_model.bin, "
                        "vocab.txt (BERT) or vocab.json + merges.txt (RoBERTa)")
    parser.add_argument("out_dir", help="output folder: model.pt, dict.txt, BPE files, convert_hf.json")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="fail when the final hidden states differ by more than this (default 1e-4)")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the round-trip check through transformers (not recommended)")
    args = parser.parse_args(argv)
    # fairseq's cfg conversion warns through hydra; one warning is attributed to the caller's line
    warnings.filterwarnings("ignore", module="hydra")  # hydra 1.1 deprecations raised inside hydra
    warnings.filterwarnings("ignore", message=r"(?s).*is validated against ConfigStore schema")
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO,
                        stream=sys.stdout, force=True)  # fairseq configures the root logger at import
    logging.getLogger("fairseq").setLevel(logging.WARNING)
    meta = convert_folder(args.hf_dir, args.out_dir, args.tolerance, check=not args.no_verify)
    out = Path(args.out_dir).resolve()
    print(f"wrote {out}/model.pt and {out}/dict.txt ({len(meta['source_ids'])} symbols with <mask>)")
    flags = train_args(out, allow_unverified=args.no_verify)
    print("fine-tune with: fairseq-train DATA-bin --user-dir fairseq_freelb " + " ".join(flags)
          + " --required-batch-size-multiple 1 ...")  # every example in every batch
    return 0



def run(argv: Optional[Sequence[str]] = None) -> int:
    """:func:`main` with one-line errors (``convert_hf: error: <file>: <cause>``), exit code 1."""
    return run_command(PROG, main, argv)
