"""The vocabulary side: fairseq's dictionary order, dict.txt, and the BPE files fairseq reads.

fairseq index: 0..3 = <s>, <pad>, </s>, <unk>; 4.. = dict.txt in source-id order;
last = <mask> (added by the task after loading dict.txt).
"""

import shutil
from pathlib import Path
from typing import Dict, List, Tuple

from fairseq_freelb.convert_hf.reading import ConversionError, HFCheckpoint

# fairseq's Dictionary puts these four first (fairseq.data.Dictionary.__init__).
FAIRSEQ_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
FAIRSEQ_PADDING_IDX = 1


def fairseq_vocabulary(ckpt: HFCheckpoint) -> Tuple[List[str], List[int]]:
    """``dict.txt`` symbols, and the source id behind each fairseq index.

    fairseq index: 0..3 = <s>, <pad>, </s>, <unk>; 4.. = dict.txt in source-id order;
    last = <mask> (added by the task after loading dict.txt).
    """
    index_of = {}
    for i, token in enumerate(ckpt.tokens):
        if token in index_of:
            raise ConversionError(f"{ckpt.folder}: token {token!r} appears twice in the vocabulary (ids {index_of[token]}, {i})")
        index_of[token] = i
    special_ids = {}
    for symbol, token in ckpt.specials.items():
        if token not in index_of:
            raise ConversionError(f"{ckpt.folder}: special token {token!r} (for fairseq's {symbol}) is not in the vocabulary")
        special_ids[symbol] = index_of[token]
    special_set = set(special_ids.values())

    symbols, ids = [], []
    for i, token in enumerate(ckpt.tokens):
        if i in special_set:
            continue
        if ckpt.tokenizer == "byte_bpe":
            # fairseq's --bpe gpt2 writes each BPE token as its id in encoder.json; the converted
            # folder's encoder.json is the source's vocab.json, so those ids are the source ids.
            symbol = str(i)
        else:
            symbol = token
            if not symbol or any(c.isspace() for c in symbol):
                raise ConversionError(
                    f"{ckpt.folder / 'vocab.txt'}: line {i + 1}: token {symbol!r} is empty or contains "
                    "whitespace, which fairseq's dict.txt cannot hold"
                )
            if symbol in FAIRSEQ_SPECIALS or symbol == "<mask>":
                raise ConversionError(
                    f"{ckpt.folder / 'vocab.txt'}: line {i + 1}: ordinary token {symbol!r} collides with a fairseq special symbol"
                )
        symbols.append(symbol)
        ids.append(i)
    source_ids = [special_ids[s] for s in FAIRSEQ_SPECIALS] + ids + [special_ids["<mask>"]]
    return symbols, source_ids


def bpe_paths(out_dir: Path, bpe_args: Dict[str, object]) -> Dict[str, object]:
    """The BPE settings with file names made absolute for ``out_dir``."""
    resolved = {}
    for key, value in bpe_args.items():
        resolved[key] = str(Path(out_dir) / value) if key.endswith(("_file", "_json", "_bpe")) else value
    return resolved


def bpe_flags(out_dir: Path, bpe_args: Dict[str, object]) -> List[str]:
    """``--bpe bert --bpe-vocab-file OUT_DIR/vocab.txt`` (or the GPT-2 pair): the BPE as fairseq flags.

    Given to ``fairseq-train``, they are saved in every checkpoint's ``cfg.bpe``, so a
    fine-tuned checkpoint names its tokenizer: ``RobertaModel.from_pretrained`` then
    encodes text with it (without them it falls back to GPT-2 from the internet), and
    ``python -m fairseq_freelb.export_hf`` finds the vocabulary to export.
    """
    settings = bpe_paths(out_dir, bpe_args)
    flags = ["--bpe", str(settings.pop("bpe"))]
    for key, value in settings.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags += [flag] if value else []
        else:
            flags += [flag, str(value)]
    return flags


def write_vocabulary(ckpt: HFCheckpoint, symbols: List[str], out_dir: Path) -> None:
    """``dict.txt`` and the BPE files: ``vocab.txt`` (WordPiece) or ``encoder.json`` + ``vocab.bpe`` (byte BPE)."""
    (out_dir / "dict.txt").write_text("".join(f"{s} 1\n" for s in symbols), encoding="utf-8")
    if ckpt.tokenizer == "wordpiece":
        (out_dir / "vocab.txt").write_text("".join(t + "\n" for t in ckpt.tokens), encoding="utf-8")
        return
    shutil.copyfile(ckpt.folder / "vocab.json", out_dir / "encoder.json")
    # fairseq's GPT-2 reader skips the first line (a "#version" header) and the last
    # (expects a trailing newline); normalise so no merge is lost.
    merges = (ckpt.folder / "merges.txt").read_text(encoding="utf-8").split("\n")
    merges = [m for m in merges if m.strip()]
    if merges and merges[0].startswith("#version"):
        merges = merges[1:]
    (out_dir / "vocab.bpe").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges), encoding="utf-8")


def bpe_files(bpe_args: Dict[str, object]) -> List[str]:
    """The file names among the BPE settings (``vocab.txt``, or ``encoder.json`` and ``vocab.bpe``)."""
    return [str(value) for key, value in bpe_args.items() if key.endswith(("_file", "_json", "_bpe"))]
