"""Convert a Hugging Face BERT or RoBERTa checkpoint into fairseq's RoBERTa format.

    python -m fairseq_freelb.convert_hf HF_DIR OUT_DIR

``HF_DIR`` holds ``config.json``, the weights (``model.safetensors`` or
``pytorch_model.bin``) and the tokenizer files (``vocab.txt`` for BERT's
WordPiece; ``vocab.json`` + ``merges.txt`` for RoBERTa's byte-level BPE).
``OUT_DIR`` receives what ``fairseq-train --restore-file`` and
``RobertaModel.from_pretrained`` need:

* ``model.pt``: a fairseq checkpoint (``cfg`` + ``model``) of ``--arch roberta_base``
  with the source's sizes, for ``--task masked_lm`` like fairseq's own ``roberta.base``;
* ``dict.txt``: the vocabulary as a fairseq ``Dictionary``;
* the BPE files: ``vocab.txt`` (``--bpe bert``) or ``encoder.json`` + ``vocab.bpe`` (``--bpe gpt2``);
* ``convert_hf.json``: the ``fairseq-train`` architecture flags, the BPE settings and
  the verification result.

How the two architectures line up (both are post-LayerNorm Transformer encoders):

* token embeddings: rows reordered into fairseq's dictionary order, with
  ``[CLS]``/``<s>`` -> ``<s>`` (0), ``[PAD]`` -> ``<pad>`` (1), ``[SEP]``/``</s>`` -> ``</s>`` (2),
  ``[UNK]`` -> ``<unk>`` (3), the ordinary tokens in the source's id order (``dict.txt``),
  and ``[MASK]`` -> ``<mask>``, which fairseq's tasks append after ``dict.txt``;
* positions: fairseq's learned positions start at ``padding_idx + 1`` = 2, so BERT's
  row k becomes fairseq's row k + 2 (RoBERTa already uses that offset);
* segments: fairseq's RoBERTa has no token-type embedding, so the type-0 row (the one
  every single-sentence input uses) is added into every position row;
* layers map one to one (q/k/v/out projections, two LayerNorms, fc1/fc2), GELU stays GELU;
* the masked-LM head is copied when the source has one, else left at fairseq's initialisation
  (it is not used by sentence-prediction fine-tuning); BERT's pooler is dropped.

The command verifies its output: it loads ``model.pt`` with fairseq's own loader, runs
one batch (sentences through the converted BPE and dictionary, plus random token ids)
through it and through the Hugging Face model (``transformers``), and fails when the
final hidden states differ by more than ``--tolerance`` (1e-4).

Everything is written into a temporary folder next to ``OUT_DIR`` and moved into place
only after verification passed, so a failed run leaves an earlier conversion untouched;
:func:`load_converted` accepts only a folder whose ``convert_hf.json`` records a passed
verification, and returns the model in eval mode.

``train_args`` includes the BPE flags (``--bpe bert --bpe-vocab-file OUT_DIR/vocab.txt``), so
every checkpoint fine-tuned from the folder records its tokenizer in ``cfg.bpe``.

One job per module: :mod:`.reading` (the Hugging Face folder), :mod:`.vocabulary`
(dictionary order, BPE files and flags), :mod:`.mapping` (weights), :mod:`.writing` (model.pt),
:mod:`.verification`, :mod:`.staging` (an output folder built aside and swapped in, shared with
``export_hf``), :mod:`.folder` (atomic output, reading it back), :mod:`.command`.
"""

from fairseq_freelb.convert_hf.command import main, run
from fairseq_freelb.convert_hf.folder import OUTPUT_FILES, convert_folder, load_converted, read_verified, train_args
from fairseq_freelb.convert_hf.mapping import Conversion, convert, fairseq_model_args
from fairseq_freelb.convert_hf.reading import ConversionError, HFCheckpoint, check_supported, read_hf_folder
from fairseq_freelb.convert_hf.verification import METADATA_FILE, VERIFY_SENTENCES, verify
from fairseq_freelb.convert_hf.vocabulary import bpe_paths, fairseq_vocabulary
from fairseq_freelb.convert_hf.writing import write_output

__all__ = [
    "Conversion", "ConversionError", "HFCheckpoint", "METADATA_FILE", "OUTPUT_FILES", "VERIFY_SENTENCES",
    "bpe_paths", "check_supported", "convert", "convert_folder", "fairseq_model_args", "fairseq_vocabulary",
    "load_converted", "main", "read_hf_folder", "read_verified", "run", "train_args", "verify", "write_output",
]
