"""Export a fine-tuned fairseq checkpoint to Hugging Face transformers (and to stock fairseq), verified.

    python -m fairseq_freelb.export_hf CHECKPOINT OUT_DIR [--data DATA_BIN] [--tolerance 1e-5] [--fairseq OUT]

``OUT_DIR`` receives a folder that ``AutoTokenizer`` and ``AutoModelForSequenceClassification``
(``AutoModelForMultipleChoice`` for a ranking head) load with no custom code:
``config.json`` (with ``id2label``/``label2id`` from the label names the checkpoint recorded,
or ``problem_type="regression"``), ``model.safetensors``, ``tokenizer.json`` +
``tokenizer_config.json`` (laying texts out as the fairseq task did), ``vocab.txt`` (BERT
WordPiece, from ``convert_hf``) or ``vocab.json`` + ``merges.txt`` (RoBERTa GPT-2 BPE), and
``export_hf.json`` (what was compared, the largest difference, the counts). ``--fairseq OUT``
also writes a checkpoint folder that stock fairseq loads without the plugin (:mod:`.stock`).

One job per module: :mod:`.source` (reading the checkpoint: shape, head, layout, data),
:mod:`.vocabulary` (the BPE and the Hugging Face id of each fairseq index), :mod:`.weights`
(the weights under Hugging Face names), :mod:`.tokenizer_files`, :mod:`.verification`,
:mod:`.folder` (atomic output), :mod:`.stock` (``--fairseq``), :mod:`.command`.
"""

from fairseq_freelb.export_hf.command import main, run
from fairseq_freelb.export_hf.folder import METADATA_FILE, OUTPUT_FILES, export_folder
from fairseq_freelb.export_hf.source import ExportError, FineTuned, read_checkpoint
from fairseq_freelb.export_hf.stock import export_stock

__all__ = ["ExportError", "FineTuned", "METADATA_FILE", "OUTPUT_FILES", "export_folder", "export_stock", "main",
           "read_checkpoint", "run"]
