"""The exported folder as a whole: built aside, verified, then moved into place.

``export_folder`` writes the Hugging Face files into a temporary folder next to ``OUT_DIR``,
loads them back through transformers and compares them with the fairseq model there,
records the comparison in ``export_hf.json``, and only then swaps the folder in
(:mod:`fairseq_freelb.convert_hf.staging`). A failed export or verification leaves
``OUT_DIR`` exactly as it was.
"""

import json
import logging
from pathlib import Path
from typing import List, Optional

from fairseq_freelb.convert_hf.staging import check_replaceable, staged_folder
from fairseq_freelb.export_hf.source import CLASSIFICATION, ExportError, FineTuned, build_fairseq, read_checkpoint
from fairseq_freelb.export_hf.tokenizer_files import template, write_tokenizer
from fairseq_freelb.export_hf.verification import verify
from fairseq_freelb.export_hf.vocabulary import Vocabulary, map_vocabulary, write_vocab_files
from fairseq_freelb.export_hf.weights import build_hf_model, max_positions

logger = logging.getLogger("fairseq_freelb.export_hf")

METADATA_FILE = "export_hf.json"
# Every file an export writes; an existing OUT_DIR holding anything else is not replaced.
OUTPUT_FILES = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                "vocab.txt", "vocab.json", "merges.txt", "generation_config.json", METADATA_FILE}


def label_names(fine_tuned: FineTuned, task, trust_label_dict: bool) -> Optional[List[str]]:
    """Class index -> label, as the checkpoint recorded it (``task_state["label_names"]``); None without classes."""
    if fine_tuned.kind != CLASSIFICATION:
        return None
    names = fine_tuned.label_names
    if names is None:
        if not trust_label_dict:
            raise ExportError(f"{fine_tuned.path}: records no label names (fine-tuned without the plugin, or before it "
                              "recorded them), so which class means which label is unknown; if it was trained on exactly "
                              f"{fine_tuned.data_dir / 'label' / 'dict.txt'}, pass --trust-label-dict")
        labels = task.label_dictionary
        names = [labels[labels.nspecial + i] for i in range(min(fine_tuned.num_outputs, len(labels) - labels.nspecial))]
    if len(names) != fine_tuned.num_outputs:
        raise ExportError(f"{fine_tuned.path}: records {len(names)} label names for a head of {fine_tuned.num_outputs} classes")
    return names


def describe(fine_tuned: FineTuned, vocabulary: Vocabulary, eos: int) -> dict:
    """The input layout, as ``export_hf.json`` and the docs state it."""
    shape = template(vocabulary, fine_tuned.layout, eos)
    return {
        "single": " ".join(shape["single"]).replace("$A", "A"),
        "pair": " ".join(shape["pair"]).replace("$A", "A").replace("$B", "B"),
        "A": fine_tuned.layout.first,
        "B": fine_tuned.layout.second,
        "token_type_ids": "not used: fairseq's RoBERTa has no segments, the exported token-type embeddings are zero",
    }


def export_folder(checkpoint, out_dir, data: Optional[str] = None, tolerance: float = 1e-5,
                  trust_label_dict: bool = False) -> dict:
    """Export, write aside, verify, move into ``out_dir``; returns the content of ``OUT_DIR/export_hf.json``."""
    out_dir = Path(out_dir).resolve()
    check_replaceable(out_dir, OUTPUT_FILES, "an export", ExportError)
    fine_tuned = read_checkpoint(checkpoint, data)
    fairseq_model, task = build_fairseq(fine_tuned)
    dictionary = task.source_dictionary
    names = label_names(fine_tuned, task, trust_label_dict)
    vocabulary = map_vocabulary(fine_tuned, dictionary)
    model, class_name = build_hf_model(fine_tuned, vocabulary, names, dictionary.unk())
    logger.info(f"{fine_tuned.path}: {fine_tuned.kind} head {fine_tuned.head_name!r} -> {class_name}; "
                f"BPE from {vocabulary.origin}")
    meta = {
        "source": str(Path(checkpoint).resolve()),
        "model_class": class_name,
        "head": {"name": fine_tuned.head_name, "kind": fine_tuned.kind, "outputs": fine_tuned.num_outputs,
                 "labels": names},
        "fairseq": {"task": fine_tuned.task_name, "criterion": fine_tuned.criterion_name,
                    "dictionary": str(fine_tuned.dictionary_path.resolve()), "layer_norm_eps": fine_tuned.layer_norm_eps},
        "tokenizer": {"kind": vocabulary.kind, "bpe_from": vocabulary.origin,
                      "ids_meaning_unk": len(vocabulary.unk_rows)},
        "input_layout": describe(fine_tuned, vocabulary, dictionary.eos()),
        "verified": False,
    }
    with staged_folder(out_dir, ExportError) as staging:
        write_vocab_files(vocabulary, staging)
        write_tokenizer(vocabulary, fine_tuned.layout, dictionary.eos(), max_positions(fine_tuned), staging)
        model.save_pretrained(str(staging))
        try:
            record = verify(fine_tuned, fairseq_model, dictionary, vocabulary, staging, tolerance,
                            name=out_dir / "model.safetensors")
        except ExportError as exc:
            raise ExportError(f"{exc}; nothing was written to {out_dir}") from None
        meta.update(verified=True, verification=record)
        logger.info(f"verified: max |fairseq - transformers| of the logits = {record['max_abs_diff']:.3g} "
                    f"(<= {tolerance:g}), predicted labels equal: {record['predicted_labels_equal']}")
        (staging / METADATA_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        unknown = sorted(p.name for p in staging.iterdir() if p.name not in OUTPUT_FILES)
        if unknown:  # a later transformers writing other files: keep OUTPUT_FILES complete
            raise ExportError(f"{out_dir}: transformers wrote files export_hf does not know ({', '.join(unknown)})")
    return meta
