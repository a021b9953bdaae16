"""SuperGLUE WSC files: reading the rows, finding each pronoun, grouping candidates; no torch, no fairseq.

A WSC JSONL line is ``{"text", "target": {"span1_text", "span1_index",
"span2_text", "span2_index"}, "idx", "label"}``: ``span2`` is the pronoun (its
word index in ``text.split(" ")``), ``span1`` a noun phrase that may be its
referent, and ``label`` says whether it is (absent in ``test.jsonl``). The rows
that share a text and a pronoun are one *candidate group*: their ``span1_text``
values are the candidates the masked-LM head scores in place of the pronoun
(RoBERTa's formulation, Liu et al. 2019, appendix on WNLI; FreeLB perturbs the
whole group as one example, Zhu et al. 2020, appendix A.1).

Every problem is a :class:`WSCFormatError` naming ``file:line``; nothing is
dropped silently. A pronoun index off by one word (a known slip of the
official files) is moved to the neighbouring word that spells the pronoun, and
counted.
"""

import json
import string
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from fairseq_freelb.core.errors import FreeLBError

PUNCTUATION = string.punctuation + "“”‘’"
SENTENCE_END = (".", "!", "?", '."', '!"', '?"')
# Words that open a noun phrase and lose their capital letter inside a sentence.
DETERMINERS = {"the", "a", "an", "this", "that", "these", "those", "his", "her", "their", "its", "my", "our", "your"}


class WSCFormatError(FreeLBError, ValueError):
    """A WSC (or WSC-format) file that cannot be read as such; the message starts with ``file:line``."""


def normalize_word(word: str) -> str:
    """Lower case, punctuation stripped from both ends (``"He`` and ``he,`` are both ``he``)."""
    return word.strip(PUNCTUATION).lower()


@dataclass
class WSCRow:
    text: str
    candidate: str  # span1_text, trailing punctuation removed
    pronoun: str  # span2_text
    pronoun_index: int  # word index in text.split(" "), after realignment
    pronoun_words: int
    label: Optional[bool]
    origin: str  # "file:line"
    row: int  # 0-based position in the file
    extra: Dict = field(default_factory=dict)  # e.g. wnli_index for rows mapped from WNLI
    realigned: bool = False


@dataclass
class CandidateGroup:
    """The rows sharing one text and one pronoun: the candidates scored against each other."""

    text: str
    pronoun_index: int
    pronoun_words: int
    rows: List[WSCRow]

    @property
    def origin(self) -> str:
        return self.rows[0].origin

    @property
    def candidates(self) -> List[str]:
        return [r.candidate for r in self.rows]

    @property
    def labels(self) -> List[Optional[bool]]:
        return [r.label for r in self.rows]


def _fail(origin: str, message: str):
    raise WSCFormatError(f"{origin}: {message}")


def _int(value, origin: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(origin, f"{what} must be an integer, got {value!r}")
    return value


def _str(value, origin: str, what: str) -> str:
    if not isinstance(value, str):
        _fail(origin, f"{what} must be a string, got {type(value).__name__}")
    return value


def locate_pronoun(words: Sequence[str], index: int, pronoun: str) -> Tuple[Optional[int], int]:
    """``(index, word count)`` of ``pronoun`` at ``index`` of ``words``, or one word beside it; None if neither."""
    wanted = [normalize_word(w) for w in pronoun.split()]
    n = max(1, len(wanted))
    for at in (index, index + 1, index - 1):
        if 0 <= at and at + n <= len(words) and [normalize_word(w) for w in words[at : at + n]] == wanted:
            return at, n
    return None, n


def row_from_json(obj, origin: str, row: int) -> WSCRow:
    """One parsed WSC line as a :class:`WSCRow`, its pronoun checked against the text."""
    if not isinstance(obj, dict):
        _fail(origin, f"expected a JSON object, got {type(obj).__name__}")
    text = _str(obj.get("text"), origin, "text")
    target = obj.get("target")
    if not isinstance(target, dict):
        _fail(origin, "missing 'target' object (span1_text, span1_index, span2_text, span2_index)")
    candidate = _str(target.get("span1_text"), origin, "target.span1_text").strip().rstrip(".,;:!?").strip()
    pronoun = _str(target.get("span2_text"), origin, "target.span2_text").strip()
    index = _int(target.get("span2_index"), origin, "target.span2_index")
    _int(target.get("span1_index"), origin, "target.span1_index")
    if not candidate:
        _fail(origin, "target.span1_text is empty")
    if "\n" in candidate or "\n" in text:
        _fail(origin, "a line break inside text or span1_text")
    words = text.split(" ")
    at, n = locate_pronoun(words, index, pronoun)
    if at is None:
        found = words[index] if 0 <= index < len(words) else "past the end of the text"
        _fail(origin, f"target.span2_text {pronoun!r} is not word {index} of the text (that is {found!r}), "
                      "nor the word before or after it")
    label = obj.get("label")
    if label is not None and not isinstance(label, bool):
        _fail(origin, f"label must be true or false, got {label!r}")
    extra = {k: v for k, v in obj.items() if k not in ("text", "target", "label", "idx")}
    return WSCRow(text, candidate, pronoun, at, n, label, origin, row, extra, realigned=at != index)


def read_rows(path: str, labelled: Optional[bool] = None) -> List[WSCRow]:
    """Every row of a WSC JSONL file, in file order.

    ``labelled=True`` requires a label on every row (train, val), ``False`` on
    none; None accepts all or none.
    """
    rows: List[WSCRow] = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            origin = f"{path}:{lineno}"
            try:
                obj = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                _fail(origin, f"malformed JSON line ({exc.msg} at column {exc.colno})")
            rows.append(row_from_json(obj, origin, len(rows)))
    if not rows:
        raise WSCFormatError(f"{path}: no rows")
    has_label = [r.label is not None for r in rows]
    if labelled is True and not all(has_label):
        _fail(rows[has_label.index(False)].origin, "no label, but every row of this file needs one")
    if labelled is False and any(has_label):
        _fail(rows[has_label.index(True)].origin, "a label in a file read as unlabelled")
    if labelled is None and any(has_label) and not all(has_label):
        _fail(rows[has_label.index(False)].origin, "no label, but other rows of this file have one")
    return rows


def group_rows(rows: Sequence[WSCRow]) -> List[CandidateGroup]:
    """Candidate groups (same text, same pronoun position), in order of their first row."""
    groups: Dict[Tuple[str, int], CandidateGroup] = {}
    for row in rows:
        key = (row.text, row.pronoun_index)
        if key not in groups:
            groups[key] = CandidateGroup(row.text, row.pronoun_index, row.pronoun_words, [])
        groups[key].rows.append(row)
    return list(groups.values())


@dataclass
class TrainingExamples:
    """One example per correct candidate, scored against its group's wrong candidates (RoBERTa's WSC training)."""

    examples: List[Tuple[CandidateGroup, List[WSCRow]]]  # (group, [correct row, wrong rows ...])
    rows: int
    groups: int
    without_wrong: int  # correct candidates whose group has no other, wrong one: nothing to rank against
    without_correct: int  # groups whose candidates are all wrong: no target
    duplicates_dropped: int  # wrong candidates spelled as the correct one or as an earlier wrong one

    def summary(self, split: str) -> str:
        return (f"{split}: {self.rows} rows in {self.groups} candidate groups; {len(self.examples)} training examples "
                "(one per correct candidate, against its group's wrong ones); not trained on: "
                f"{self.without_wrong} correct candidates without a wrong one in their group, "
                f"{self.without_correct} groups without a correct candidate; "
                f"{self.duplicates_dropped} duplicate wrong candidates dropped")


def training_examples(groups: Sequence[CandidateGroup]) -> TrainingExamples:
    out = TrainingExamples([], sum(len(g.rows) for g in groups), len(groups), 0, 0, 0)
    for group in groups:
        correct = [r for r in group.rows if r.label]
        wrong_all = [r for r in group.rows if r.label is False]
        if not correct:
            out.without_correct += 1
            continue
        for positive in correct:
            seen = {normalize_phrase(positive.candidate)}
            wrong = []
            for r in wrong_all:
                key = normalize_phrase(r.candidate)
                if key in seen:
                    out.duplicates_dropped += 1
                    continue
                seen.add(key)
                wrong.append(r)
            if not wrong:
                out.without_wrong += 1
                continue
            out.examples.append((group, [positive] + wrong))
    return out


def normalize_phrase(text: str) -> str:
    return " ".join(normalize_word(w) for w in text.split())


def substitute(text: str, pronoun_index: int, pronoun_words: int, candidate: str) -> Tuple[str, str, str]:
    """``(left, candidate, right)``: the text with ``candidate`` in place of the pronoun.

    Punctuation glued to the pronoun stays (``"He`` keeps its quote, ``him.``
    its period); the spaces go with the piece that follows them, as GPT-2's BPE
    attaches them. A candidate at the start of a sentence gets a capital
    letter; a leading determiner inside a sentence loses it.
    """
    words = text.split(" ")
    first, last = words[pronoun_index], words[pronoun_index + pronoun_words - 1]
    lead = first[: len(first) - len(first.lstrip(PUNCTUATION))]
    trail = last[len(last.rstrip(PUNCTUATION)) :]
    before = words[:pronoun_index]
    after = words[pronoun_index + pronoun_words :]
    sentence_start = not before or before[-1].endswith(SENTENCE_END) or any(q in lead for q in '"“')
    candidate = fit_case(candidate, sentence_start)
    left = " ".join(before)
    space = " " if before else ""
    if lead:
        left, space = left + space + lead, ""
    right = trail + ("" if not after else " " + " ".join(after))
    return left, space + candidate, right


def fit_case(candidate: str, sentence_start: bool) -> str:
    head, _, rest = candidate.partition(" ")
    if sentence_start:
        return candidate[:1].upper() + candidate[1:]
    if head.lower() in DETERMINERS and head[:1].isupper():
        return head.lower() + (" " + rest if rest else "")
    return candidate
