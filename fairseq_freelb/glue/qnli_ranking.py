"""QNLI-ranking-bin: built from QNLI's files, scored row by row, labelled per original row; also a command.

``python -m fairseq_freelb.glue.preprocess --tasks QNLI-ranking`` writes
``<out>/QNLI-ranking-bin/`` (the pairing and the prediction rules:
:mod:`~fairseq_freelb.glue.qnli_ranking_data`):

- ``train`` and ``valid``: ranking pairs in fairseq's ``sentence_ranking`` layout:
  ``input0`` the question, ``input1``/``input2`` the two candidate sentences,
  ``label/<split>.label`` the entailed one (0 or 1, alternating);
- ``valid_rows`` and ``test``: every original dev and test row, in file order
  (``input0`` the question, ``input1`` the sentence), scored one by one at
  prediction; ``rows/<split>.tsv`` gives each row's id, question number and
  label, ``index/<split>.index`` the ids;
- ``meta.json``: the counts printed while building it.

Each example is ``<s> sentence </s> </s> question </s>``; when longer than
``--max-positions`` the question and the sentences are cut longest-first, the
question the same for both sentences of a pair. The folder is built aside and
moved into place when complete.

Dev accuracy per original row (comparable with the classification
formulation's), as a command::

    python -m fairseq_freelb.glue.qnli_ranking --data-bin glue-bin/QNLI-ranking-bin \\
        --checkpoint checkpoints/QNLI-ranking/freelb-seed1/checkpoint_best.pt [--checkpoint more.pt] [--cpu]
"""

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from fairseq import utils

from fairseq_freelb.commands import CommandError, run_command
from fairseq_freelb.output_files import build_folder_aside
from fairseq_freelb.glue.binarize import SPECIAL_TOKENS, binarize, binarized_size, bpe_encode, fit_to_length
from fairseq_freelb.glue.qnli_ranking_data import (
    FORMULATION, Decisions, candidate_counts, choose_threshold, decide, describe_candidates, describe_decisions,
    needs_threshold, pair_up, question_groups,
)
from fairseq_freelb.glue.tsv import SplitRows
from fairseq_freelb.adapters.ensemble import load_task_ensemble
from fairseq_freelb.glue.ranking_task import QNLIRankingTask, RankingCheckpointMismatch
from fairseq_freelb.mc.scoring import choice_scores

FOLDER = f"{FORMULATION}-bin"
PAIR_SPLITS = ("train", "valid")  # fairseq-train's splits: ranking pairs
ROW_SPLITS = {"valid_rows": "valid", "test": "test"}  # per-row split -> the QNLI split it lists
ROWS_HEADER = "index\tquestion\tlabel"


# --------------------------------------------------------------------------- building QNLI-ranking-bin


def _fit_pair(question, first, second, budget) -> Tuple[list, list, list, bool]:
    """Cut longest-first so that both ``<s> sentence </s> </s> question </s>`` fit; one question for both."""
    q_len = min(len(fit_to_length([s, question], budget)[0][1]) for s in (first, second))
    out = question[:q_len], first[: budget - q_len], second[: budget - q_len]
    return (*out, (len(out[0]), len(out[1]), len(out[2])) != (len(question), len(first), len(second)))


def write_ranking_bin(splits: Dict[str, SplitRows], out_dir: Path, srcdict: Path, bpe_files, workers: int,
                      max_positions: int) -> Dict:
    """Build ``<out>/QNLI-ranking-bin`` aside from QNLI's rows, then move it into place; returns its meta.json."""
    meta = build_folder_aside(
        out_dir / FOLDER, lambda building: _build(splits, building, srcdict, bpe_files, workers, max_positions))
    for line in meta["printed"]:
        print(line, flush=True)
    return meta


def _build(splits, dest: Path, srcdict, bpe_files, workers, max_positions) -> Dict:
    budget = max_positions - SPECIAL_TOKENS[2]
    texts = [s for rows in splits.values() for ex in rows.examples for s in ex.sentences]
    encoded = iter(bpe_encode(texts, bpe_files[0], bpe_files[1], workers, FORMULATION))
    ids = {split: [(next(encoded), next(encoded)) for _ in rows.examples] for split, rows in splits.items()}
    groups = {split: question_groups([ex.sentences[0] for ex in rows.examples]) for split, rows in splits.items()}
    lines: Dict[str, Dict[str, List[list]]] = {}
    meta = {"task": FORMULATION, "base_task": "QNLI", "max_positions": max_positions, "truncation": "longest_first",
            "missing_splits": [s for s in ROW_SPLITS if ROW_SPLITS[s] not in splits], "splits": {}, "printed": []}
    for split in PAIR_SPLITS:
        rows = splits[split]
        pairing = pair_up(groups[split], [ex.label for ex in rows.examples])
        out = lines[split] = {"input0": [], "input1": [], "input2": [], "label": []}
        truncated = 0
        for k, (entailed, not_entailed) in enumerate(pairing.pairs):
            first, second = (entailed, not_entailed) if k % 2 == 0 else (not_entailed, entailed)
            question, a, b, cut = _fit_pair(ids[split][first][0], ids[split][first][1], ids[split][second][1], budget)
            truncated += cut
            out["input0"].append(question)
            out["input1"].append(a)
            out["input2"].append(b)
            out["label"].append(k % 2)
        fate = "dropped from training" if split == "train" else \
            "left out of fairseq-train's validation pairs (they are scored per row in valid_rows)"
        meta["splits"][split] = {"file": str(rows.path), "rows_in": rows.rows_in, "rows": pairing.rows,
                                 "questions": pairing.questions, "pairs": len(pairing.pairs),
                                 "unpaired_questions": pairing.unpaired_questions,
                                 "unpaired_rows": pairing.unpaired_rows, "truncated": truncated}
        meta["printed"].append(pairing.summary(split, fate) + f"; {truncated} pairs truncated to {max_positions} positions")
    meta["train_pairs"] = meta["splits"]["train"]["pairs"]
    for split, source in ROW_SPLITS.items():
        if source not in splits:
            continue
        rows = splits[source]
        out = lines[split] = {"input0": [], "input1": []}
        truncated = 0
        for question, sentence in ids[source]:
            (sentence, question), cut = fit_to_length([sentence, question], budget)
            truncated += cut
            out["input0"].append(question)
            out["input1"].append(sentence)
        counts = candidate_counts(groups[source])
        meta["splits"][split] = {"file": str(rows.path), "rows_in": rows.rows_in, "truncated": truncated, **counts}
        meta["printed"].append(describe_candidates(split, counts) + f"; {truncated} rows truncated to {max_positions} positions")
        (dest / "rows").mkdir(exist_ok=True)
        (dest / "index").mkdir(exist_ok=True)
        table = "".join(f"{ex.index}\t{g}\t{ex.label or ''}\n" for ex, g in zip(rows.examples, groups[source]))
        (dest / "rows" / f"{split}.tsv").write_text(ROWS_HEADER + "\n" + table, encoding="utf-8")
        (dest / "index" / f"{split}.index").write_text("".join(ex.index + "\n" for ex in rows.examples), encoding="utf-8")
    with tempfile.TemporaryDirectory(dir=dest) as scratch:
        for name in ("input0", "input1", "input2"):
            files = {}
            for split, columns in lines.items():
                if name in columns:
                    files[split] = Path(scratch) / f"{split}.{name}"
                    files[split].write_text("".join(" ".join(map(str, s)) + "\n" for s in columns[name]))
            binarize(files, srcdict, dest / name, workers)
    (dest / "label").mkdir()
    for split in PAIR_SPLITS:
        (dest / "label" / f"{split}.label").write_text("".join(f"{y}\n" for y in lines[split]["label"]))
    for split, columns in lines.items():
        written = binarized_size(dest / "input0" / split)
        if written != len(columns["input0"]):
            raise RuntimeError(f"{FORMULATION} {split}: {len(columns['input0'])} examples but {written} binarized")
    (dest / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


# --------------------------------------------------------------------------- prediction


def read_rows(data_bin: Path, split: str) -> Tuple[List[str], List[int], List[str]]:
    """Ids, question numbers and labels ("" when unlabelled) of a per-row split, in file order."""
    path = Path(data_bin) / "rows" / f"{split}.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (preprocess with --tasks QNLI-ranking)")
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines[0] != ROWS_HEADER:
        raise CommandError(f"{path}:1: header must be {ROWS_HEADER!r}")
    cols = [line.split("\t") for line in lines[1:] if line]
    return [c[0] for c in cols], [int(c[1]) for c in cols], [c[2] for c in cols]


@dataclass
class RankingEnsemble:
    models: list
    task: object
    paths: List[str]


def load_ranking_ensemble(paths: Sequence[str], data_bin: Path, cpu: bool = False) -> RankingEnsemble:
    """Each checkpoint loaded on ``data_bin`` with one candidate per example (the per-row splits)."""

    def one_head(path: str, model) -> None:
        if len(getattr(model, "classification_heads", {})) != 1:
            raise CommandError(f"checkpoint {path}: expected one ranking head, found {list(model.classification_heads)}")

    models, task = load_task_ensemble(
        paths, str(data_bin), "qnli_ranking", QNLIRankingTask,
        "(examples/roberta_glue/qnli_ranking.sh): it is no QNLI-ranking model",
        refused=(RankingCheckpointMismatch,), arg_overrides={"num_classes": 1}, check_model=one_head, cpu=cpu)
    return RankingEnsemble(models, task, [str(p) for p in paths])


def row_scores(ensemble: RankingEnsemble, split: str, batch_size: int = 32) -> np.ndarray:
    """The ensemble's mean ranking score of every row of ``split``, in file order."""


    task, models = ensemble.task, ensemble.models
    task.load_dataset(split)
    dataset = task.dataset(split)
    itr = task.get_batch_iterator(dataset=dataset, max_sentences=batch_size, max_positions=task.max_positions(),
                                  ignore_invalid_inputs=False, required_batch_size_multiple=1,
                                  num_workers=0).next_epoch_itr(shuffle=False)
    device = next(models[0].parameters()).device
    scores = np.zeros(len(dataset))
    seen = np.zeros(len(dataset), dtype=bool)
    with torch.no_grad():
        for sample in itr:
            sample = utils.move_to_cuda(sample, device=device) if device.type == "cuda" else sample
            ids = sample["id"].cpu().numpy()
            per_model = [choice_scores(m, sample, next(iter(m.classification_heads)))[:, 0] for m in models]
            scores[ids] = torch.stack(per_model).mean(dim=0).cpu().numpy()
            seen[ids] = True
    if not seen.all():
        raise RuntimeError(f"{split}: {int((~seen).sum())} of {len(dataset)} rows were not scored")
    return scores


def predict_rows(ensemble: RankingEnsemble, data_bin: Path, split: str, batch_size: int = 32) -> Tuple[List[str], Decisions]:
    """Ids and per-row decisions of ``split`` (``test`` or ``valid_rows``)."""
    index, groups, _ = read_rows(data_bin, split)
    scores = row_scores(ensemble, split, batch_size)
    threshold = None
    if needs_threshold(groups):
        _, _, dev_labels = read_rows(data_bin, "valid_rows")
        dev_scores = scores if split == "valid_rows" else row_scores(ensemble, "valid_rows", batch_size)
        threshold = choose_threshold(dev_scores, dev_labels)
    return index, decide(scores, groups, threshold)


def dev_accuracy(ensemble: RankingEnsemble, data_bin: Path, batch_size: int = 32) -> Tuple[float, int, Decisions]:
    """Accuracy (percent) over every original dev row, and the decisions behind it."""
    _, _, gold = read_rows(data_bin, "valid_rows")
    _, decisions = predict_rows(ensemble, data_bin, "valid_rows", batch_size)
    correct = sum(p == g for p, g in zip(decisions.labels, gold))
    return 100.0 * correct / len(gold), len(gold), decisions


PROG = "python -m fairseq_freelb.glue.qnli_ranking"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Dev accuracy of a QNLI-ranking checkpoint (or an ensemble: "
                                     "mean scores) per original QNLI dev row.")
    parser.add_argument("--data-bin", required=True, help="the QNLI-ranking-bin folder")
    parser.add_argument("--checkpoint", action="append", required=True, help="checkpoint; repeat for an ensemble")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cpu", action="store_true", help="run on CPU even if a GPU is available")
    args = parser.parse_args(argv)
    data_bin = Path(args.data_bin)
    ensemble = load_ranking_ensemble(args.checkpoint, data_bin, args.cpu)
    accuracy, n, decisions = dev_accuracy(ensemble, data_bin, args.batch_size)
    print(describe_decisions(f"{FORMULATION} valid_rows", decisions))
    print(f"{FORMULATION} valid_rows: accuracy {accuracy:.2f} (n={n}, every original QNLI dev row)")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(PROG, main))
