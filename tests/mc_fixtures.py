"""Tiny files in the exact official multiple-choice formats, built by the tests.

* CommonsenseQA: ``train_rand_split.jsonl``, ``dev_rand_split.jsonl``,
  ``test_rand_split_no_answers.jsonl`` (5 choices A-E, ``question_concept``,
  no answerKey on test).
* ARC: ``ARC-{Easy,Challenge}/ARC-{Easy,Challenge}-{Train,Dev,Test}.jsonl``, mixing
  4-choice A-D questions, numeric ``1``-``4`` labels, and 3- and 5-choice questions.
* OpenBookQA, as released (``OpenBookQA-V1-Sep2018.zip``):
  ``OpenBookQA-V1-Sep2018/Data/Main/{train,dev,test}.jsonl`` (4 choices A-D,
  ``text`` before ``label``, test labelled too) and
  ``Data/Additional/{train,dev,test}_complete.jsonl`` (the same questions plus
  ``fact1``, ``humanScore``, ``clarity``, ``turkIdAnonymized``).
* RACE: ``RACE/{train,dev,test}/{high,middle}/<n>.txt``, one JSON object per
  article with several questions, some of them cloze (``_``).

The correct answer repeats a word of the stem, so a model can learn something.
"""

import json
import random
from pathlib import Path
from typing import Dict, List

NOUNS = ["river", "forest", "city", "mountain", "kitchen", "garden", "library", "desert", "ocean", "school",
         "planet", "magnet", "battery", "cloud", "seed", "rock", "metal", "light", "sound", "plant"]
VERBS = ["find", "keep", "see", "carry", "build", "grow", "move", "heat", "cool", "hear"]


def _choices(rng: random.Random, answer_word: str, n: int, labels: List[str]):
    others = [w for w in NOUNS if w != answer_word]
    texts = rng.sample(others, n - 1)
    pos = rng.randrange(n)
    texts.insert(pos, answer_word)
    return [{"label": lab, "text": f"the {t}"} for lab, t in zip(labels, texts)], labels[pos]


def _stem(rng: random.Random, word: str) -> str:
    return f"Where would you {rng.choice(VERBS)} a {word} near the {rng.choice(NOUNS)}?"


def _write_jsonl(path: Path, rows: List[Dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def make_csqa(root: Path, n_train=24, n_dev=8, n_test=8, seed=0) -> Dict[str, Path]:
    rng = random.Random(seed)
    out = {}
    for name, n, labelled in (("train_rand_split", n_train, True), ("dev_rand_split", n_dev, True),
                              ("test_rand_split_no_answers", n_test, False)):
        rows = []
        for i in range(n):
            word = rng.choice(NOUNS)
            choices, key = _choices(rng, word, 5, list("ABCDE"))
            # The release's key order: answerKey (labelled files only), id, question.
            row = {"answerKey": key} if labelled else {}
            row.update({"id": f"{rng.getrandbits(64):016x}{name[:2]}{i}",
                        "question": {"question_concept": word, "choices": choices, "stem": _stem(rng, word)}})
            rows.append(row)
        out[name] = _write_jsonl(root / f"{name}.jsonl", rows)
    return out


def _arc_rows(rng: random.Random, prefix: str, n: int) -> List[Dict]:
    """Cycle through the layouts ARC really has: A-D, 1-4, 3 choices (A-C), 5 choices (A-E)."""
    layouts = [list("ABCD"), ["1", "2", "3", "4"], list("ABC"), list("ABCDE")]
    rows = []
    for i in range(n):
        labels = layouts[i % len(layouts)]
        word = rng.choice(NOUNS)
        choices, key = _choices(rng, word, len(labels), labels)
        choices = [{"text": c["text"], "label": c["label"]} for c in choices]  # ARC lists text before label
        rows.append({"id": f"{prefix}_{7000000 + i}", "question": {"stem": _stem(rng, word), "choices": choices},
                     "answerKey": key})
    return rows


def make_arc(root: Path, n_train=16, n_dev=8, n_test=8, seed=1) -> Dict[str, Path]:
    rng = random.Random(seed)
    out = {}
    for level in ("Easy", "Challenge"):
        for split, n in (("Train", n_train), ("Dev", n_dev), ("Test", n_test)):
            name = f"ARC-{level}-{split}"
            out[name] = _write_jsonl(root / f"ARC-{level}" / f"{name}.jsonl", _arc_rows(rng, f"Mercury{level}{split}", n))
    return out


def make_obqa(root: Path, n_train=16, n_dev=8, n_test=8, seed=2) -> Dict[str, Path]:
    """Main files under ``out["main"]`` (keys ``train``, ``dev``, ``test``), Additional ones under ``out["additional"]``."""
    rng = random.Random(seed)
    data = root / "OpenBookQA-V1-Sep2018" / "Data"
    out = {"main": data / "Main", "additional": data / "Additional"}
    for split, n in (("train", n_train), ("dev", n_dev), ("test", n_test)):
        main, additional = [], []
        for i in range(n):
            word = rng.choice(NOUNS)
            choices, key = _choices(rng, word, 4, list("ABCD"))
            choices = [{"text": c["text"], "label": c["label"]} for c in choices]
            question = {"stem": f"A {word} can be used to", "choices": choices}
            qid = f"{8 + len(split)}-{100 + i}"
            main.append({"id": qid, "question": question, "answerKey": key})
            additional.append({"id": qid, "question": question, "fact1": f"a {word} is a kind of {rng.choice(NOUNS)}",
                               "humanScore": "1.00", "clarity": "2.00", "turkIdAnonymized": f"{rng.getrandbits(40):010x}",
                               "answerKey": key})
        out[split] = _write_jsonl(out["main"] / f"{split}.jsonl", main)
        out[f"{split}_complete"] = _write_jsonl(out["additional"] / f"{split}_complete.jsonl", additional)
    return out


def make_race(root: Path, articles_per_level=3, seed=3) -> Path:
    rng = random.Random(seed)
    race = root / "RACE"
    for offset, split in ((1000, "train"), (2000, "dev"), (3000, "test")):
        for level in ("high", "middle"):
            for a in range(articles_per_level):
                words = rng.sample(NOUNS, 6)
                article = " ".join(f"The {w} is next to the {rng.choice(NOUNS)}." for w in words)
                questions, options, answers = [], [], []
                for q in range(3):
                    word = words[q]
                    choices, key = _choices(rng, word, 4, list("ABCD"))
                    stem = "The writer says the _ is next to something." if q == 1 else f"What is near the {word}?"
                    questions.append(stem)
                    options.append([c["text"] for c in choices])
                    answers.append(key)
                path = race / split / level / f"{offset + a}.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({"answers": answers, "options": options, "questions": questions,
                                            "article": article, "id": f"{level}{offset + a}.txt"}))
    return race
