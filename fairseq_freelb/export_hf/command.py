"""``python -m fairseq_freelb.export_hf CHECKPOINT OUT_DIR``: the command line."""

import argparse
import logging
import sys
import warnings
from pathlib import Path
from typing import Optional, Sequence

from fairseq_freelb.commands import run_command
from fairseq_freelb.export_hf.folder import METADATA_FILE, export_folder
from fairseq_freelb.export_hf.stock import export_stock

PROG = "export_hf"

DESCRIPTION = """\
Export a fine-tuned fairseq RoBERTa checkpoint (a classification, regression or multiple-choice head,
trained with or without FreeLB) to a Hugging Face folder that AutoTokenizer and
AutoModelForSequenceClassification / AutoModelForMultipleChoice load with no custom code, and verify it:
the exported tokenizer must give the token ids the fairseq task trained on, and the exported model the
fairseq logits within --tolerance, with the same predicted labels. Models from convert_hf (WordPiece) become
Bert*, fairseq's RoBERTa (GPT-2 BPE) becomes Roberta*. Everything is written aside and moved into OUT_DIR
only once verified; a failed run leaves OUT_DIR as it was.
"""

EPILOG = """\
examples:
  python -m fairseq_freelb.export_hf checkpoints/checkpoint_best.pt minilm-sst2-hf
  python -m fairseq_freelb.export_hf checkpoints/checkpoint_best.pt out-hf --data RTE-bin --fairseq out-fairseq

then: transformers.pipeline("text-classification", model="minilm-sst2-hf")("a charming film")
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fairseq_freelb.export_hf", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint written by fairseq-train (--task sentence_prediction, "
                        "sentence_ranking or multiple_choice; checkpoint_best.pt, checkpoint_last.pt, ...)")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="the Hugging Face folder to write: config.json, model.safetensors, "
                        "tokenizer.json, tokenizer_config.json, vocab.txt or vocab.json + merges.txt, export_hf.json")
    parser.add_argument("--data", default=None, metavar="DATA_BIN", help="the data folder the checkpoint was fine-tuned on (its dictionary; "
                        "default: the folder the checkpoint records)")
    parser.add_argument("--tolerance", type=float, default=1e-5, metavar="T",
                        help="fail when the logits of transformers and fairseq differ by more than this (default 1e-5)")
    parser.add_argument("--fairseq", default=None, metavar="OUT",
                        help="also write a checkpoint folder that stock fairseq loads without this plugin "
                        "(RobertaModel.from_pretrained(OUT)), verified the same way")
    parser.add_argument("--trust-label-dict", action="store_true",
                        help="for a checkpoint that records no label names: take them from the data's label/dict.txt "
                        "(right only if it was trained on exactly that file)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The command; expected failures raise :class:`~fairseq_freelb.export_hf.source.ExportError`."""
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore", module="hydra")  # hydra 1.1 deprecations raised inside hydra
    warnings.filterwarnings("ignore", message=r"(?s).*is validated against ConfigStore schema")
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO,
                        stream=sys.stdout, force=True)  # fairseq configures the root logger at import
    logging.getLogger("fairseq").setLevel(logging.WARNING)
    meta = export_folder(args.checkpoint, args.out_dir, args.data, args.tolerance, args.trust_label_dict)
    out = Path(args.out_dir).resolve()
    check = meta["verification"]
    print(f"wrote {out} ({meta['model_class']}); verified: max |fairseq - transformers| of the logits "
          f"{check['max_abs_diff']:.3g} <= {args.tolerance:g}, labels equal {check['predicted_labels_equal']} "
          f"(see {out / METADATA_FILE})")
    if args.fairseq:
        stock = export_stock(args.checkpoint, args.fairseq, args.data, args.tolerance, args.trust_label_dict)
        print(f"wrote {Path(args.fairseq).resolve()} for stock fairseq (--arch {stock['arch']}); verified: max |stock - "
              f"plugin| of the logits {stock['verification']['max_abs_diff']:.3g} <= {args.tolerance:g}")
    return 0


def run(argv: Optional[Sequence[str]] = None) -> int:
    """:func:`main` with one-line errors (``export_hf: error: <file>: <cause>``), exit code 1."""
    return run_command(PROG, main, argv)
