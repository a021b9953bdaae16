"""WNLI rows as WSC candidate groups, found by aligning each hypothesis with its premise; no torch, no fairseq.

A WNLI hypothesis repeats a clause of its premise with a noun phrase in place
of one pronoun ("When I pulled the pin out, it had a hole." / "The carrot had
a hole."). :func:`align` recovers the pronoun and the phrase without hand
edits: for each pronoun of the premise it matches the hypothesis's last words
against the words after the pronoun and its first words against the words
before it (lower case, punctuation stripped); what lies between is the
candidate, which must be a phrase of the premise (a leading determiner may
differ: "the carrot" for "a carrot"). The pronoun whose alignment matches the
most words wins; a tie between two pronouns, a candidate that is no phrase of
the premise (as when the hypothesis substitutes two pronouns), or no matching
word at all leaves the row unmapped, with the reason.

Mapped rows that share a premise and a pronoun form one candidate group, as
the WSC rows of one text and pronoun do (:mod:`fairseq_freelb.wsc.formats`).
At prediction the group's best-scoring candidate gets ``1`` and the others
``0``; rows alone in their group and unmapped rows get a stated fallback
label (:func:`decide`).
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from fairseq_freelb.wsc.formats import DETERMINERS, normalize_word

PRONOUNS = {
    "he", "him", "his", "himself", "she", "her", "hers", "herself", "it", "its", "itself",
    "they", "them", "their", "theirs", "themselves",
}
MAX_CANDIDATE_WORDS = 10
EDGE_PUNCTUATION = '.,;:!?"“”()'

# Why a row was not mapped (the keys of the printed counts).
NO_ALIGNMENT = "no pronoun of the premise aligns with the hypothesis"
AMBIGUOUS = "two pronouns of the premise align equally well"
NOT_IN_PREMISE = "the substituted phrase is not in the premise"

# How each WNLI row is decided at prediction.
BY_GROUP = "best-scoring candidate of its group"
ALONE = "mapped, but alone in its group"
UNMAPPED = "not mapped"


@dataclass
class Alignment:
    pronoun_index: int  # word index in " ".join(premise.split()).split(" ")
    pronoun: str
    candidate: str
    matched_words: int


def _tail(h: List[str], p: List[str], i: int) -> int:
    """The most last words of ``h`` that are the words right after ``p[i]`` (at least one word of ``h`` left)."""
    for b in range(min(len(h) - 1, len(p) - i - 1), 0, -1):
        if h[len(h) - b :] == p[i + 1 : i + 1 + b]:
            return b
    return 0


def _head(h: List[str], p: List[str], i: int, room: int) -> int:
    """The most first words of ``h`` that are the words right before ``p[i]`` (at most ``room``)."""
    for a in range(min(room, i), 0, -1):
        if h[:a] == p[i - a : i]:
            return a
    return 0


def _without_possessive(word: str) -> str:
    for suffix in ("'s", "’s"):
        if word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def phrase_start(phrase: List[str], p: List[str]) -> Optional[int]:
    """Where the phrase, without a leading determiner, runs in the premise's words (``Fred`` matches ``Fred's``)."""
    core = [_without_possessive(w) for w in (phrase[1:] if phrase[0] in DETERMINERS and len(phrase) > 1 else phrase)]
    words = [_without_possessive(w) for w in p]
    for k in range(len(words) - len(core) + 1):
        if words[k : k + len(core)] == core:
            return k
    return None


def align(premise: str, hypothesis: str) -> Tuple[Optional[Alignment], str]:
    """``(alignment, "")``, or ``(None, reason)`` when no single pronoun of the premise explains the hypothesis."""
    p_words, h_words = premise.split(), hypothesis.split()
    p, h = [normalize_word(w) for w in p_words], [normalize_word(w) for w in h_words]
    found = []
    phrase_missing = False
    for i, word in enumerate(p):
        if word not in PRONOUNS:
            continue
        b = _tail(h, p, i)
        a = _head(h, p, i, len(h) - 1 - b)
        if a + b == 0:
            continue
        middle = [w for w in h[a : len(h) - b] if w]
        if not middle or len(middle) > MAX_CANDIDATE_WORDS or all(w in PRONOUNS for w in middle):
            continue
        if phrase_start(middle, p) is None:
            phrase_missing = True
            continue
        candidate = " ".join(h_words[a : len(h_words) - b]).strip(EDGE_PUNCTUATION).strip()
        found.append(Alignment(i, p_words[i].strip(EDGE_PUNCTUATION), candidate, a + b))
    if not found:
        return None, NOT_IN_PREMISE if phrase_missing else NO_ALIGNMENT
    best = max(a.matched_words for a in found)
    top = [a for a in found if a.matched_words == best]
    if len(top) > 1:
        return None, AMBIGUOUS
    return top[0], ""


@dataclass
class MappedRow:
    index: str  # the WNLI id
    label: Optional[str]  # "0"/"1", None on test
    group: Optional[int]  # candidate group number, None when unmapped
    reason: str  # "" when mapped
    wsc: Optional[Dict] = None  # the row in WSC's JSON format


@dataclass
class MappedSplit:
    rows: List[MappedRow]
    groups: int

    @property
    def mapped(self) -> int:
        return sum(r.group is not None for r in self.rows)

    def group_sizes(self) -> Counter:
        return Counter(r.group for r in self.rows if r.group is not None)

    def counts(self) -> Dict[str, int]:
        sizes = self.group_sizes()
        reasons = Counter(r.reason for r in self.rows if r.group is None)
        return {
            "rows": len(self.rows),
            "mapped": self.mapped,
            "groups": self.groups,
            "in_groups_of_two_or_more": sum(n for n in sizes.values() if n >= 2),
            "alone": sum(n for n in sizes.values() if n == 1),
            "not_mapped": len(self.rows) - self.mapped,
            **{f"not_mapped: {k}": v for k, v in sorted(reasons.items())},
        }


def map_rows(examples: Sequence[Tuple[str, str, str, Optional[str]]]) -> MappedSplit:
    """``(index, premise, hypothesis, label)`` rows, in file order, as WSC candidate groups."""
    groups: Dict[Tuple[str, int], int] = {}
    out = []
    for position, (index, premise, hypothesis, label) in enumerate(examples):
        text = " ".join(premise.split())
        alignment, reason = align(text, hypothesis)
        if alignment is None:
            out.append(MappedRow(index, label, None, reason))
            continue
        key = (text, alignment.pronoun_index)
        group = groups.setdefault(key, len(groups))
        words = [normalize_word(w) for w in text.split(" ")]
        start = phrase_start([normalize_word(w) for w in alignment.candidate.split()], words)
        wsc = {
            "text": text,
            "target": {
                "span1_text": alignment.candidate,
                "span1_index": start,
                "span2_text": alignment.pronoun,
                "span2_index": alignment.pronoun_index,
            },
            "idx": position,
            "wnli_index": index,
        }
        if label is not None:
            wsc["label"] = label == "1"
        out.append(MappedRow(index, label, group, "", wsc))
    return MappedSplit(out, len(groups))


@dataclass
class Decisions:
    labels: List[str]  # one per WNLI row, in file order
    by_rule: Dict[str, int] = field(default_factory=dict)  # rows decided by each rule


def decide(split: MappedSplit, scores: Dict[int, List[float]], fallback: str) -> Decisions:
    """``1`` for the best-scoring candidate of each group of two or more, ``0`` for the others.

    ``scores[group]`` lists the group's candidate scores in row order. A row alone
    in its group (no other candidate to beat) and an unmapped row get ``fallback``.
    Ties go to the first row of the group.
    """
    sizes = split.group_sizes()
    members: Dict[int, List[int]] = {}
    for k, row in enumerate(split.rows):
        if row.group is not None:
            members.setdefault(row.group, []).append(k)
    labels = [fallback] * len(split.rows)
    rules = Counter()
    for k, row in enumerate(split.rows):
        if row.group is None:
            rules[UNMAPPED] += 1
        elif sizes[row.group] == 1:
            rules[ALONE] += 1
        else:
            rules[BY_GROUP] += 1
    for group, rows in members.items():
        if len(rows) < 2:
            continue
        group_scores = scores[group]
        if len(group_scores) != len(rows):
            raise ValueError(f"group {group}: {len(group_scores)} scores for {len(rows)} rows")
        best = max(range(len(rows)), key=lambda j: (group_scores[j], -j))
        for j, k in enumerate(rows):
            labels[k] = "1" if j == best else "0"
    return Decisions(labels, {rule: rules.get(rule, 0) for rule in (BY_GROUP, ALONE, UNMAPPED)})
