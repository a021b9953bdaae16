"""The protocol's sides of a data folder: training, selection, held-out; by group, checked, recorded in ``splits.json``.

``--selection-from train`` (default): whole groups of the training split, in
a seeded order, go to the *selection* side until it holds
``--selection-fraction`` of the training examples; the rest is trained on.
The *held-out* side is the whole dev set (MNLI: matched, and mismatched as a
second held-out side), so its figure is comparable to the papers' dev
numbers, except that nothing was chosen on it.

``--selection-from dev``: the whole training split is trained on; the dev set
is split by group into halves, the selection half and the held-out half
(MNLI's mismatched dev set stays whole, held out).

:func:`check_sides` refuses, in one line, a group on two sides carved from the
same split, an index on two sides, or a split whose examples are not all
accounted for. Pure functions of the keys; no file is read here.
"""

import hashlib
import json
import random
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

from fairseq_freelb.commands import CommandError

# The side each fairseq subset of the materialized data holds (fairseq-train --valid-subset names).
SUBSET_OF_SIDE = {"train": "train", "selection": "valid", "heldout": "valid1", "heldout_mismatched": "valid2"}


@dataclass(frozen=True)
class Side:
    name: str  # train, selection, heldout, heldout_mismatched
    source_split: str  # the folder's split it was taken from
    indices: Tuple[int, ...]  # example indices in that split, ascending


def carve(keys: Sequence[str], fraction: float, seed: int) -> Tuple[List[int], List[int]]:
    """(rest, part): whole groups, in a seeded order, go to ``part`` until it holds ``fraction`` of the examples."""
    groups: "OrderedDict[str, List[int]]" = OrderedDict()
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    order = sorted(groups)  # independent of the file order, then shuffled by the seed
    random.Random(seed).shuffle(order)
    rest: List[int] = []
    part: List[int] = []
    for key in order:
        (part if len(part) < fraction * len(keys) else rest).extend(groups[key])
    return sorted(rest), sorted(part)


def make_sides(keys: Dict[str, List[str]], dev_splits: Sequence[str], selection_from: str, fraction: float,
               seed: int) -> List[Side]:
    """The sides for ``keys`` (split -> one group key per example); see the module docstring."""
    first_dev, *other_dev = dev_splits
    if selection_from == "train":
        rest, part = carve(keys["train"], fraction, seed)
        sides = [Side("train", "train", tuple(rest)), Side("selection", "train", tuple(part)),
                 Side("heldout", first_dev, tuple(range(len(keys[first_dev]))))]
    elif selection_from == "dev":
        selection, heldout = carve(keys[first_dev], 0.5, seed)
        sides = [Side("train", "train", tuple(range(len(keys["train"])))),
                 Side("selection", first_dev, tuple(selection)), Side("heldout", first_dev, tuple(heldout))]
    else:
        raise CommandError(f"--selection-from {selection_from}: choose train or dev")
    for split in other_dev:  # MNLI's mismatched dev set: held out whole
        sides.append(Side("heldout_mismatched", split, tuple(range(len(keys[split])))))
    for side in sides:
        if not side.indices:
            total = len(keys[side.source_split])
            raise CommandError(
                f"--selection-from {selection_from} --selection-fraction {fraction:g}: the {side.name} side is empty "
                f"({total} {side.source_split} examples in {len(set(keys[side.source_split]))} groups); "
                "change the fraction, --group-by, or --selection-from")
    check_sides(sides, keys)
    return sides


def check_sides(sides: Sequence[Side], keys: Dict[str, List[str]]) -> None:
    """Refuse a shared index or group between two sides of one split, and any example of a used split left out."""
    by_split: Dict[str, List[Side]] = {}
    for side in sides:
        by_split.setdefault(side.source_split, []).append(side)
    for split, mine in by_split.items():
        seen: Dict[int, str] = {}
        group_side: Dict[str, str] = {}
        for side in mine:
            for index in side.indices:
                if index in seen:
                    raise CommandError(f"{split} example {index} is on both the {seen[index]} and the {side.name} side")
                seen[index] = side.name
                key = keys[split][index]
                if group_side.setdefault(key, side.name) != side.name:
                    raise CommandError(f"{split}: group {key[:60]!r} is on both the {group_side[key]} and the "
                                       f"{side.name} side; a group must stay on one side (see --group-by)")
        if len(seen) != len(keys[split]):
            missing = sorted(set(range(len(keys[split]))) - set(seen))
            raise CommandError(f"{split}: {len(missing)} example(s) on no side (first: {missing[:3]}); every example "
                               "must be trained on, selected on or held out")


def splits_digest(data_digest: str, sides: Sequence[Side]) -> str:
    """A digest of the source data and of every side's indices: what the runs trained and were scored on."""
    digest = hashlib.sha256(data_digest.encode("utf-8"))
    for side in sides:
        digest.update(json.dumps([side.name, side.source_split, list(side.indices)]).encode("utf-8"))
    return digest.hexdigest()[:16]


def record(sides: Sequence[Side], keys: Dict[str, List[str]], **about) -> dict:
    """The content of ``splits.json``: what was split and how, every side's indices, group counts and the digest."""
    out = dict(about)
    out["sides"] = {
        side.name: {"source_split": side.source_split, "subset": SUBSET_OF_SIDE[side.name], "examples": len(side.indices),
                    "groups": len({keys[side.source_split][i] for i in side.indices}), "indices": list(side.indices)}
        for side in sides
    }
    return out
