"""Fixtures in the official formats for the paper's GLUE submission: QNLI as ranking, WNLI through WSC.

- QNLI (``index question sentence label``; test without label): questions with
  one, two and three candidates, rows of one question not always adjacent,
  questions whose entailment/not_entailment counts do not pair up.
- WNLI (``index sentence1 sentence2 label``): premises with two hypotheses (a
  candidate group), one alone, hypotheses that do not align (a changed word,
  two substitutions, an ambiguous pronoun, a phrase not in the premise).
- SuperGLUE WSC JSONL (``text``, ``target.span1_text/span1_index/span2_text/span2_index``,
  ``idx``, ``label``): groups with a correct and wrong candidates, a lone correct
  candidate, a group of wrong ones only, a duplicate wrong candidate, and a
  pronoun index off by one word (as in the official files).

Each ``EXPECTED_*`` dict holds the counts the pipeline must print for these files.
Files are written by hand (tabs joined, JSON per line), never through a TSV writer.
"""

import json
from pathlib import Path
from typing import List

# --------------------------------------------------------------------------- QNLI

QUESTIONS = {
    "q1": "What is the capital of France?",
    "q2": "Who wrote the novel about the white whale?",
    "q3": "When did the war end?",
    "q4": "How many moons does Mars have?",
    "q5": "Why is the sky blue?",
    "q6": "Where do penguins live?",
}
SENTENCES = [
    "Paris is the capital and largest city of France.", "The city has a famous tower made of iron.",
    "Herman Melville wrote Moby-Dick in 1851.", "The whale is a large animal of the sea.",
    "The novel was not a success when it appeared.", "The war ended in 1945 after six years.",
    "Mars has two small moons, Phobos and Deimos.", "Mars is red because of iron oxide.",
    "The moons were found in 1877.", "Mars is the fourth planet from the sun.",
    "Light from the sun is scattered by the air.", "The sky looks grey on a cloudy day.",
    "Penguins live almost only in the southern half of the world.", "Penguins cannot fly.",
]

# (question, label) of each train row, in file order: pairs 6; q2 and q3 do not pair up (2 rows).
QNLI_TRAIN = [("q1", "E"), ("q2", "N"), ("q4", "E"), ("q2", "E"), ("q1", "N"), ("q3", "E"), ("q2", "E"),
              ("q4", "N"), ("q5", "N"), ("q4", "N"), ("q6", "E"), ("q4", "E"), ("q5", "E"), ("q6", "N")]
# Dev: d1 pair, d2 two entailments, d3 alone, d4 three candidates, d5 pair.
QNLI_DEV = [("q1", "E"), ("q2", "E"), ("q1", "N"), ("q2", "E"), ("q3", "N"), ("q4", "E"), ("q4", "N"), ("q4", "N"),
            ("q5", "N"), ("q5", "E")]
# Test: t1 two rows apart, t2 alone, t3 three rows, t4 and t5 pairs.
QNLI_TEST = ["q1", "q2", "q3", "q1", "q3", "q4", "q3", "q4", "q5", "q5"]

EXPECTED_QNLI = {
    "train": {"rows": 14, "questions": 6, "pairs": 6, "unpaired_questions": 2, "unpaired_rows": 2},
    "valid": {"rows": 10, "questions": 5, "pairs": 3, "unpaired_questions": 3, "unpaired_rows": 4},
    "valid_rows": {"rows": 10, "questions": 5, "questions_with_two": 3, "questions_with_one": 1,
                   "questions_with_three_or_more": 1, "rows_paired": 6, "rows_by_threshold": 4},
    "test": {"rows": 10, "questions": 5, "questions_with_two": 3, "questions_with_one": 1,
             "questions_with_three_or_more": 1, "rows_paired": 6, "rows_by_threshold": 4},
}
QNLI_TEST_PAIRS = [(0, 3), (5, 7), (8, 9)]  # row positions of the paired test questions
QNLI_TEST_THRESHOLD_ROWS = [1, 2, 4, 6]

LABEL = {"E": "entailment", "N": "not_entailment"}


def _write(path: Path, header: List[str], rows: List[List[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join("\t".join(r) + "\n" for r in [header] + rows).encode("utf-8"))


def make_qnli(glue_dir: Path) -> None:
    head = ["index", "question", "sentence"]
    for name, rows in (("train", QNLI_TRAIN), ("dev", QNLI_DEV)):
        _write(glue_dir / "QNLI" / f"{name}.tsv", head + ["label"],
               [[str(i), QUESTIONS[q], SENTENCES[(3 * i + len(name)) % len(SENTENCES)], LABEL[lab]]
                for i, (q, lab) in enumerate(rows)])
    _write(glue_dir / "QNLI" / "test.tsv", head,
           [[str(i), QUESTIONS[q], SENTENCES[(5 * i + 1) % len(SENTENCES)]] for i, q in enumerate(QNLI_TEST)])


# --------------------------------------------------------------------------- WNLI

CARROT = "I stuck a pin through a carrot. When I pulled the pin out, it had a hole."
STAGE = "John couldn't see the stage with Billy in front of him because he is so short."
STEVE = "Steve follows Fred's example in everything. He influences him hugely."
TROPHY = "The trophy doesn't fit into the brown suitcase because it is too large."
POLICE = "The police arrested all of the gang members. They were trying to stop the drug trade in the neighborhood."
CRIED = "Anna hugged Mary when she cried, because she cried."
TOMMY = "When Tommy dropped his ice cream, Timmy giggled, so father gave him a sympathetic look."

WNLI_TRAIN = [(CARROT, "The carrot had a hole.", "1"), (CARROT, "The pin had a hole.", "0"),
              (STAGE, "John is so short.", "1"), (STAGE, "Billy is so short.", "0"),
              (POLICE, "The police were trying to stop the drug trade in the neighborhood.", "1"),
              (POLICE, "The gang members were trying to stop the drug trade in the neighborhood.", "0"),
              (TROPHY, "The suitcase is too large.", "0")]
WNLI_DEV = [(CARROT, "The carrot had a hole.", "1"), (STAGE, "Billy is so short.", "0"),
            (CARROT, "The pin had a hole.", "0"), (STAGE, "John is so short.", "1"),
            (STEVE, "Steve influences him hugely.", "1"),  # alone in its group
            (TROPHY, "The trophy is large.", "1")]  # a changed word: no alignment
# Test, in file order: the police pair apart, Tommy alone, four unmapped rows.
WNLI_TEST = [(POLICE, "The police were trying to stop the drug trade in the neighborhood."),
             (TOMMY, "Father gave Tommy a sympathetic look."),
             (STEVE, "Steve influences Fred hugely."),  # two substitutions: the phrase is not in the premise
             (POLICE, "The gang members were trying to stop the drug trade in the neighborhood."),
             (CRIED, "Mary cried."),  # two pronouns align equally well
             (TROPHY, "The suitcase is large."),  # a changed word
             (CARROT, "The carrot had a hole."), (CARROT, "The pin had a hole.")]

EXPECTED_WNLI = {
    "wnli_valid": {"rows": 6, "mapped": 5, "groups": 3, "in_groups_of_two_or_more": 4, "alone": 1, "not_mapped": 1,
                   "not_mapped: no pronoun of the premise aligns with the hypothesis": 1},
    "test": {"rows": 8, "mapped": 5, "groups": 3, "in_groups_of_two_or_more": 4, "alone": 1, "not_mapped": 3,
             "not_mapped: no pronoun of the premise aligns with the hypothesis": 1,
             "not_mapped: the substituted phrase is not in the premise": 1,
             "not_mapped: two pronouns of the premise align equally well": 1},
}
WNLI_TEST_GROUPS = [(0, 3), (6, 7)]  # rows of the two test groups of two
WNLI_TEST_FALLBACK_ROWS = [1, 2, 4, 5]
WNLI_FALLBACK = "0"  # WNLI_TRAIN: four 0s, three 1s


def make_wnli(glue_dir: Path) -> None:
    head = ["index", "sentence1", "sentence2"]
    for name, rows in (("train", WNLI_TRAIN), ("dev", WNLI_DEV)):
        _write(glue_dir / "WNLI" / f"{name}.tsv", head + ["label"], [[str(i), p, h, y] for i, (p, h, y) in enumerate(rows)])
    _write(glue_dir / "WNLI" / "test.tsv", head, [[str(i), p, h] for i, (p, h) in enumerate(WNLI_TEST)])


# --------------------------------------------------------------------------- SuperGLUE WSC


def _wsc(text, span1, pronoun, label, idx, nth=1, off=0):
    """A WSC row; the pronoun is the ``nth`` occurrence of its word, its index moved by ``off`` words."""
    words = [w.strip('.,"').lower() for w in text.split(" ")]
    at = [k for k, w in enumerate(words) if w == pronoun.lower()][nth - 1]
    first = span1.split()[-1].strip(".").lower()
    return {"text": text, "target": {"span1_text": span1, "span1_index": words.index(first), "span2_text": pronoun,
                                     "span2_index": at + off}, "idx": idx, "label": label}


LIES = "Mark told Pete many lies about himself, which Pete included in his book. He should have been more skeptical."
COUNCIL = "The city councilmen refused the demonstrators a permit because they feared violence."
CHAIR = "Sam pulled up a chair to the piano, but it was broken, so he had to stand instead."
THANK = "Joan made sure to thank Susan for all the help she had given."
WSC_TRAIN = [
    _wsc(LIES, "Pete", "He", True, 0), _wsc(LIES, "Mark", "He", False, 1),
    _wsc(COUNCIL, "The city councilmen", "they", True, 2), _wsc(COUNCIL, "the demonstrators", "they", False, 3),
    _wsc(COUNCIL, "a permit", "they", False, 4),
    _wsc("The man couldn't lift his son because he was so weak.", "The man", "he", True, 5),  # alone
    _wsc("The fish ate the worm. It was tasty.", "The fish", "It", False, 6),  # no correct candidate
    _wsc(CHAIR, "the chair", "it", True, 7),
    _wsc(CHAIR, "The chair.", "it", False, 8),  # spelled as the correct one: a duplicate
    # The pronoun index one word off, as in a few official rows.
    _wsc(THANK, "Susan", "she", True, 9), _wsc(THANK, "Joan", "she", False, 10, off=1),
]
TROPHY_WSC = "The trophy doesn't fit into the brown suitcase because it is too large."
YELLED = "Jim yelled at Kevin because he was so upset."
WSC_VAL = [
    _wsc(TROPHY_WSC, "The trophy", "it", True, 0), _wsc(TROPHY_WSC, "the brown suitcase", "it", False, 1),
    _wsc(YELLED, "Jim", "he", True, 2), _wsc(YELLED, "Kevin", "he", False, 3),
    _wsc("The sculpture rolled off the shelf because it wasn't anchored.", "The sculpture", "it", True, 4),
]
EXPECTED_WSC = {
    "train": {"rows": 11, "groups": 6, "examples": 3, "correct_without_wrong": 2, "groups_without_correct": 1,
              "duplicates_dropped": 1, "realigned": 1},
    "valid": {"rows": 5, "groups": 3, "alone": 1, "realigned": 0},
}


def make_wsc(wsc_dir: Path) -> Path:
    wsc_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.jsonl", WSC_TRAIN), ("val.jsonl", WSC_VAL)):
        (wsc_dir / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return wsc_dir
