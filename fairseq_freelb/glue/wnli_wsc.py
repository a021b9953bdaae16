"""WNLI through WSC: the WNLI-wsc-bin data folder, and per-row WNLI labels from a ``freelb_wsc`` model; also a command.

``python -m fairseq_freelb.glue.preprocess --tasks WNLI-wsc --wsc-dir SuperGLUE/WSC`` writes
``<out>/WNLI-wsc-bin/``, the data folder of ``--task freelb_wsc``:

- ``dict.txt`` (``--srcdict``), ``encoder.json``, ``vocab.bpe``;
- ``train.jsonl``, ``valid.jsonl``: SuperGLUE WSC's ``train.jsonl`` and ``val.jsonl``,
  as they are (every row checked first);
- ``wnli_valid.jsonl``, ``test.jsonl``: the WNLI dev and test rows that
  :func:`fairseq_freelb.wsc.wnli_mapping.align` maps onto a pronoun and a candidate,
  in WSC's format (with ``wnli_index``);
- ``rows/<split>.tsv``: every WNLI row of the split (``index``, ``label``,
  candidate ``group`` or empty, and the ``reason`` an unmapped row was not
  mapped), ``index/<split>.index`` the ids in file order;
- ``meta.json``: the counts printed while building it, and the fallback label.

Prediction (:func:`predict`): the best-scoring candidate of each group of two
or more gets ``1``, the others ``0``; a mapped row alone in its group and an
unmapped row get the fallback label, WNLI train's majority label (ties: ``0``).

Dev accuracy per WNLI row, as a command::

    python -m fairseq_freelb.glue.wnli_wsc --data-bin glue-bin/WNLI-wsc-bin \\
        --checkpoint checkpoints/WNLI-wsc/freelb-seed1/checkpoint_best.pt [--checkpoint more.pt] [--cpu]
"""

import argparse
import json
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from fairseq_freelb.commands import CommandError, run_command
from fairseq_freelb.output_files import build_folder_aside
from fairseq_freelb.glue.tsv import SplitRows
from fairseq_freelb.wsc.formats import WSCFormatError, group_rows, read_rows, training_examples
from fairseq_freelb.wsc.wnli_mapping import ALONE, BY_GROUP, UNMAPPED, Decisions, MappedRow, MappedSplit, decide, map_rows
from fairseq_freelb.wsc.inference import group_scores, load_wsc_ensemble
from fairseq_freelb.wsc.encoding import GPT2, CandidateEncoder, load_dictionary

FORMULATION = "WNLI-wsc"
FOLDER = f"{FORMULATION}-bin"
WSC_FILES = {"train": "train.jsonl", "valid": "val.jsonl"}  # data-folder split -> SuperGLUE WSC file
WNLI_SPLITS = {"wnli_valid": "valid", "test": "test"}  # data-folder split -> WNLI split
ROWS_HEADER = "index\tlabel\tgroup\treason"


def fallback_label(train: SplitRows) -> str:
    """WNLI train's majority label (ties: ``0``): the label of rows the WSC model cannot decide."""
    counts = Counter(ex.label for ex in train.examples)
    return "1" if counts["1"] > counts["0"] else "0"


def describe_mapping(split: str, mapped: MappedSplit, fallback: str) -> str:
    c = mapped.counts()
    reasons = "; ".join(f"{k[len('not_mapped: '):]}: {v}" for k, v in c.items() if k.startswith("not_mapped: "))
    return (f"{FORMULATION} {split}: {c['rows']} WNLI rows: {c['mapped']} mapped to {c['groups']} candidate groups "
            f"({c['in_groups_of_two_or_more']} rows in groups of two or more, {c['alone']} alone); "
            f"{c['not_mapped']} not mapped" + (f" ({reasons})" if reasons else "")
            + f"; at prediction the {c['alone'] + c['not_mapped']} rows alone or not mapped get the fallback label "
            f"{fallback} (WNLI train's majority label)")


def write_wsc_bin(wnli: Dict[str, SplitRows], wsc_dir: Path, out_dir: Path, srcdict: Path, bpe_files,
                  max_positions: int) -> Dict:
    """Check everything, build ``<out>/WNLI-wsc-bin`` aside, move it into place; returns its meta.json."""
    wsc_rows = {}
    for split, name in WSC_FILES.items():
        path = wsc_dir / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: SuperGLUE WSC {name} not found (--wsc-dir)")
        wsc_rows[split] = read_rows(str(path), labelled=True)
    fallback = fallback_label(wnli["train"])
    mapped = {split: map_rows([(ex.index, ex.sentences[0], ex.sentences[1], ex.label) for ex in wnli[source].examples])
              for split, source in WNLI_SPLITS.items() if source in wnli}
    meta = build_folder_aside(out_dir / FOLDER, lambda building: _build(
        building, wsc_dir, wsc_rows, wnli, mapped, fallback, srcdict, bpe_files, max_positions))
    for line in meta["printed"]:
        print(line, flush=True)
    return meta


def _build(dest, wsc_dir, wsc_rows, wnli, mapped, fallback, srcdict, bpe_files, max_positions) -> Dict:

    shutil.copyfile(srcdict, dest / "dict.txt")
    for path, name in zip(bpe_files, ("encoder.json", "vocab.bpe")):
        shutil.copyfile(path, dest / name)
    for split, name in WSC_FILES.items():
        shutil.copyfile(wsc_dir / name, dest / f"{split}.jsonl")
    (dest / "rows").mkdir()
    (dest / "index").mkdir()
    meta = {"task": FORMULATION, "base_task": "WNLI", "max_positions": max_positions, "fallback_label": fallback,
            "wnli_train_labels": dict(Counter(ex.label for ex in wnli["train"].examples)),
            "missing_splits": [s for s, source in WNLI_SPLITS.items() if source not in wnli], "splits": {}, "printed": []}
    for split, rows in wsc_rows.items():
        groups = group_rows(rows)
        realigned = sum(r.realigned for r in rows)
        if split == "train":
            examples = training_examples(groups)
            meta["splits"][split] = {"rows": examples.rows, "groups": examples.groups, "examples": len(examples.examples),
                                     "correct_without_wrong": examples.without_wrong,
                                     "groups_without_correct": examples.without_correct,
                                     "duplicates_dropped": examples.duplicates_dropped, "realigned": realigned}
            line = examples.summary(f"{FORMULATION} WSC train")
        else:
            sizes = [len(g.rows) for g in groups]
            meta["splits"][split] = {"rows": len(rows), "groups": len(groups), "alone": sizes.count(1),
                                     "realigned": realigned}
            line = (f"{FORMULATION} WSC val: {len(rows)} rows in {len(groups)} candidate groups ({sizes.count(1)} alone: "
                    "predicted wrong in validation's per-row accuracy)")
        meta["printed"].append(f"{line}; {realigned} pronoun indices moved by one word ({wsc_dir / WSC_FILES[split]})")
    for split, result in mapped.items():
        table = "".join(f"{r.index}\t{r.label or ''}\t{'' if r.group is None else r.group}\t{r.reason}\n" for r in result.rows)
        (dest / "rows" / f"{split}.tsv").write_text(ROWS_HEADER + "\n" + table, encoding="utf-8")
        (dest / "index" / f"{split}.index").write_text("".join(r.index + "\n" for r in result.rows), encoding="utf-8")
        with open(dest / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            for r in result.rows:
                if r.wsc is not None:
                    handle.write(json.dumps(r.wsc, ensure_ascii=False) + "\n")
        meta["splits"][split] = {"file": str(wnli[WNLI_SPLITS[split]].path), **result.counts()}
        meta["printed"].append(describe_mapping(split, result, fallback))
    # Encode every candidate once now, so a text too long for the model stops preprocessing, not training.
    encoder = CandidateEncoder(load_dictionary(str(dest / "dict.txt")), GPT2(str(dest / "encoder.json"),
                               str(dest / "vocab.bpe")), max_positions)
    for split in list(WSC_FILES) + [s for s, m in mapped.items() if m.mapped]:
        for row in read_rows(str(dest / f"{split}.jsonl")):
            encoder.encode(row)
    meta["unknown_tokens"] = encoder.unknown_tokens
    (dest / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


# --------------------------------------------------------------------------- prediction


def read_mapped(data_bin: Path, split: str) -> MappedSplit:
    """The WNLI rows of ``split`` as preprocessing mapped them (``rows/<split>.tsv``)."""
    path = Path(data_bin) / "rows" / f"{split}.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (preprocess with --tasks {FORMULATION})")
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines[0] != ROWS_HEADER:
        raise CommandError(f"{path}:1: header must be {ROWS_HEADER!r}")
    rows = []
    for line in lines[1:]:
        if line:
            index, label, group, reason = line.split("\t")
            rows.append(MappedRow(index, label or None, int(group) if group else None, reason))
    return MappedSplit(rows, len({r.group for r in rows if r.group is not None}))


def folder_meta(data_bin: Path) -> Dict:
    path = Path(data_bin) / "meta.json"
    meta = json.loads(path.read_text()) if path.is_file() else {}
    if meta.get("task") != FORMULATION:
        raise CommandError(f"{data_bin}: not a {FOLDER} folder (preprocess with --tasks {FORMULATION})")
    return meta


def predict(paths: Sequence[str], data_bin: Path, split: str = "test", batch_size: int = 16,
            cpu: bool = False) -> Tuple[List[str], Decisions]:
    """Ids and per-row labels of the WNLI rows of ``split`` (``test`` or ``wnli_valid``), in file order."""
    fallback = folder_meta(data_bin)["fallback_label"]
    mapped = read_mapped(data_bin, split)
    models, task = load_wsc_ensemble(paths, data_bin, cpu)  # loaded even with nothing mapped: wrong checkpoints are refused
    scores: Dict[int, List[float]] = {}
    if mapped.mapped:
        per_group = group_scores(models, task, split, batch_size)
        members: Dict[int, List[str]] = {}
        for r in mapped.rows:
            if r.group is not None:
                members.setdefault(r.group, []).append(r.index)
        for number, group in enumerate(task.groups[split]):
            ids = [str(row.extra.get("wnli_index")) for row in group.rows]
            if members.get(number) != ids:
                raise RuntimeError(f"{data_bin}/{split}.jsonl: candidate group {number} holds WNLI rows {ids}, "
                                   f"rows/{split}.tsv says {members.get(number)}; preprocess again")
            scores[number] = list(per_group[number])
    return [r.index for r in mapped.rows], decide(mapped, scores, fallback)


def describe_decisions(what: str, decisions: Decisions, fallback: str) -> str:
    rules = decisions.by_rule
    return (f"{what}: {rules[BY_GROUP]} rows decided by their group's best-scoring candidate, "
            f"{rules[ALONE]} alone in their group and {rules[UNMAPPED]} not mapped got the fallback label {fallback}")


PROG = "python -m fairseq_freelb.glue.wnli_wsc"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="WNLI dev accuracy per row of a freelb_wsc checkpoint "
                                     "(or an ensemble: mean scores), through the WNLI-to-WSC mapping.")
    parser.add_argument("--data-bin", required=True, help="the WNLI-wsc-bin folder")
    parser.add_argument("--checkpoint", action="append", required=True, help="checkpoint; repeat for an ensemble")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--cpu", action="store_true", help="run on CPU even if a GPU is available")
    args = parser.parse_args(argv)
    data_bin = Path(args.data_bin)
    fallback = folder_meta(data_bin)["fallback_label"]
    _, decisions = predict(args.checkpoint, data_bin, "wnli_valid", args.batch_size, args.cpu)
    gold = [r.label for r in read_mapped(data_bin, "wnli_valid").rows]
    correct = sum(p == g for p, g in zip(decisions.labels, gold))
    print(describe_decisions(f"{FORMULATION} wnli_valid", decisions, fallback))
    print(f"{FORMULATION} wnli_valid: accuracy {100.0 * correct / len(gold):.2f} (n={len(gold)}, every WNLI dev row)")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(PROG, main, errors=(CommandError, WSCFormatError, FileNotFoundError, ValueError, KeyError)))
