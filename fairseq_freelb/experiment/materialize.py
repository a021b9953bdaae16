"""The protocol's sides written as data that ``fairseq-train`` reads, by index selection from the preprocessed folder.

GLUE: every side becomes a fairseq subset of ``WORKDIR/data-<digest>/``
(``train``, ``valid`` = selection, ``valid1`` = held-out, ``valid2`` = MNLI's
mismatched dev set), copied example by example from the binarized
``input0/`` (``input1/``) and ``label/`` with fairseq's indexed-dataset tools
(``MMapIndexedDataset`` read, ``MMapIndexedDatasetBuilder`` write, the same
integer type); STS-B's text labels are copied line by line. The dictionaries
are copied unchanged, so token and class ids mean what they meant.

Multiple choice: every side becomes ``{subset}.jsonl`` with the chosen lines of
the folder's ``{split}.jsonl``, next to copies of ``dict.txt``, the BPE files
and ``preprocess.json``.

The folder is built under a temporary name, checked (every subset has exactly
its side's examples, with the source's token counts), and moved into place;
``protocol.json`` inside records the splits digest, so a later run with the
same splits reuses it.
"""

import json
import os
import shutil
from pathlib import Path
from typing import Sequence

from fairseq_freelb.commands import CommandError
from fairseq_freelb.experiment.folder import TaskFolder
from fairseq_freelb.experiment.splitting import SUBSET_OF_SIDE, Side

STAMP = "protocol.json"


def materialize(folder: TaskFolder, sides: Sequence[Side], digest: str, workdir: Path) -> Path:
    """``workdir/data-<digest>`` holding every side as a subset (built once per digest)."""
    dest = workdir / f"data-{digest}"
    stamp = dest / STAMP
    if stamp.is_file() and json.loads(stamp.read_text()).get("digest") == digest:
        return dest
    building = workdir / f".data-{digest}.{os.getpid()}.building"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    try:
        if folder.kind == "glue":
            _glue(folder, sides, building)
        else:
            _mc(folder, sides, building)
        (building / STAMP).write_text(json.dumps({"digest": digest, "source": str(folder.path.resolve()),
                                                  "subsets": {SUBSET_OF_SIDE[s.name]: s.name for s in sides}}) + "\n")
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(building, dest)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return dest


def _subset_indexed(source_prefix: Path, indices: Sequence[int], dest_prefix: Path) -> None:
    import numpy as np
    import torch
    from fairseq.data import indexed_dataset

    source = indexed_dataset.MMapIndexedDataset(str(source_prefix))
    builder = indexed_dataset.MMapIndexedDatasetBuilder(str(dest_prefix) + ".bin", dtype=source._index.dtype)
    for index in indices:
        builder.add_item(torch.from_numpy(np.asarray(source[index])))
    builder.finalize(str(dest_prefix) + ".idx")
    written = indexed_dataset.MMapIndexedDataset(str(dest_prefix))
    if len(written) != len(indices) or not np.array_equal(written.sizes, source.sizes[np.asarray(indices, dtype=np.int64)]):
        raise CommandError(f"{dest_prefix}: the written subset does not match {source_prefix} at the chosen indices")


def _glue(folder: TaskFolder, sides: Sequence[Side], out: Path) -> None:
    regression = folder.glue_task.regression
    for i in range(folder.num_inputs):
        (out / f"input{i}").mkdir()
        shutil.copyfile(folder.path / f"input{i}" / "dict.txt", out / f"input{i}" / "dict.txt")
        for side in sides:
            _subset_indexed(folder.path / f"input{i}" / side.source_split, side.indices,
                            out / f"input{i}" / SUBSET_OF_SIDE[side.name])
    (out / "label").mkdir()
    if regression:
        for side in sides:
            lines = (folder.path / "label" / f"{side.source_split}.label").read_text(encoding="utf-8").splitlines()
            chosen = [lines[i] for i in side.indices]
            (out / "label" / f"{SUBSET_OF_SIDE[side.name]}.label").write_text("".join(x + "\n" for x in chosen))
    else:
        shutil.copyfile(folder.path / "label" / "dict.txt", out / "label" / "dict.txt")
        for side in sides:
            _subset_indexed(folder.path / "label" / side.source_split, side.indices,
                            out / "label" / SUBSET_OF_SIDE[side.name])
    shutil.copyfile(folder.path / "meta.json", out / "source_meta.json")


def _mc(folder: TaskFolder, sides: Sequence[Side], out: Path) -> None:
    for name in ("dict.txt", "encoder.json", "vocab.bpe", "preprocess.json"):
        if (folder.path / name).is_file():
            shutil.copyfile(folder.path / name, out / name)
    for side in sides:
        lines = (folder.path / f"{side.source_split}.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
        if len(lines) != folder.counts[side.source_split]:
            raise CommandError(f"{folder.path / (side.source_split + '.jsonl')}: {len(lines)} lines, preprocess.json "
                               f"says {folder.counts[side.source_split]} questions; preprocess the data again")
        with open(out / f"{SUBSET_OF_SIDE[side.name]}.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(lines[i] for i in side.indices)
