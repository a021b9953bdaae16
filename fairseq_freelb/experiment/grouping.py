"""``--group-by``: the key that keeps related examples on one side of a split.

Examples that share a key (the same question, the same premise) are not
independent: a model that saw one has half-seen the other. Splitting by key
keeps every group on one side, so the selection side says something about
unseen premises or questions, as the held-out side does.

Defaults (``--group-by auto``):

- GLUE: the first sentence of each example, under its column's name: the
  *question* for QNLI, the *premise* (``sentence1``) for MNLI, RTE and WNLI,
  ``question1`` for QQP, ``sentence1`` for MRPC and STS-B, the *sentence* for
  CoLA and SST-2 (identical sentences stay together). ``second`` (the
  hypothesis, QNLI's sentence), ``pair`` (both sentences) and ``none`` (each
  example alone) are the alternatives; the column names work too.
- Multiple choice: the *question* stem (identical stems stay together);
  ``context`` groups by the passage (RACE's article), ``none`` by nothing.

Keys are read from the preprocessed folder itself (GLUE: the BPE token ids of
each input; multiple choice: the text of each ``{split}.jsonl`` line), so they
need no raw file.
"""

import json
from pathlib import Path
from typing import Dict, List, Tuple

from fairseq_freelb.commands import CommandError
from fairseq_freelb.experiment.folder import TaskFolder

NLI_ALIASES = {"premise": "first", "hypothesis": "second"}
GLUE_CHOICES = ("first", "second", "pair", "none")
MC_CHOICES = ("question", "context", "none")


def resolve(folder: TaskFolder, group_by: str) -> Tuple[str, str]:
    """(key kind, the name a reader sees) for ``--group-by`` on this folder; a key it lacks is refused in one line."""
    if folder.kind == "mc":
        kind = "question" if group_by == "auto" else group_by
        if kind not in MC_CHOICES:
            raise CommandError(f"--group-by {group_by}: a multiple-choice folder groups by {', '.join(MC_CHOICES)} "
                               "(or auto: question)")
        return kind, {"question": "question stem", "context": "context passage", "none": "nothing (each question "
                      "alone)"}[kind]
    names = {name: ("first", "second")[i] for i, name in enumerate(folder.input_names)}
    if folder.task in ("MNLI", "RTE", "WNLI"):
        names.update(NLI_ALIASES)
    kind = "first" if group_by == "auto" else names.get(group_by, group_by)
    allowed = GLUE_CHOICES if folder.num_inputs == 2 else ("first", "none")
    if kind not in allowed:
        raise CommandError(f"--group-by {group_by}: {folder.task} groups by {', '.join(allowed)} or a column name "
                           f"({', '.join(sorted(names))}); auto is the first")
    label = {"first": folder.input_names[0], "second": folder.input_names[-1],
             "pair": " + ".join(folder.input_names), "none": "nothing (each example alone)"}[kind]
    if kind == "first" and folder.task in ("MNLI", "RTE", "WNLI"):
        label = f"premise ({label})"
    return kind, label


def keys(folder: TaskFolder, split: str, kind: str) -> List[str]:
    """One group key per example of ``split``, in the folder's order."""
    if kind == "none":
        return [f"#{i}" for i in range(folder.counts[split])]
    if folder.kind == "mc":
        return _mc_keys(folder.path / f"{split}.jsonl", kind)
    return _glue_keys(folder, split, kind)


def _glue_keys(folder: TaskFolder, split: str, kind: str) -> List[str]:
    from fairseq.data import indexed_dataset

    inputs = {"first": ["input0"], "second": [f"input{folder.num_inputs - 1}"], "pair": ["input0", "input1"]}[kind]
    datasets = [indexed_dataset.MMapIndexedDataset(str(folder.path / name / split)) for name in inputs]
    out = []
    for i in range(len(datasets[0])):
        out.append("|".join(" ".join(map(str, d[i].tolist())) for d in datasets))
    return out


def _mc_keys(path: Path, kind: str) -> List[str]:
    out = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            record = json.loads(line)
            if kind == "question":
                out.append(" ".join(record["question"]["stem"].split()).lower())
            else:
                context = record.get("context")
                out.append(" ".join(context.split()) if context else f"{path.name}:{number}")  # no context: alone
    return out


def shared_between(a: List[str], b: List[str]) -> Dict[str, int]:
    """Keys present in both lists, with how many examples of ``b`` carry them."""
    common = set(a) & set(b)
    counts: Dict[str, int] = {}
    for key in b:
        if key in common:
            counts[key] = counts.get(key, 0) + 1
    return counts
