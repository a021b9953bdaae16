"""Readers for the official multiple-choice formats, with no fairseq import.

Every reader returns :class:`Question` records in file order and raises
:class:`MultipleChoiceFormatError` (one line, naming the file and line) on bad
input, so that nothing is dropped silently:

* **CommonsenseQA / ARC / OpenBookQA** JSONL: one question per line,
  ``{"id", "question": {"stem", "choices": [{"label", "text"}, ...]}, "answerKey"}``;
  ``answerKey`` is absent on unlabelled test files. Labels are the dataset's own
  (``A``-``E``, or ``1``-``4`` on some ARC questions). A line may also carry a
  question-level ``"context"`` string, per-choice ``"para"`` strings (AI2's
  retrieved-context files) and a ``"source"`` tag (written by
  ``fairseq_freelb.mc.preprocess`` when it concatenates several files).
* **RACE**: one JSON object per ``.txt`` file,
  ``{"article", "questions": [...], "options": [[4 strings], ...], "answers": ["A", ...], "id"}``,
  in ``RACE/{train,dev,test}/{high,middle}/``.
* **Retrieved context** JSONL: ``{"id", "context"}`` per question, or
  ``{"id", "label", "context"}`` for one choice of a question.
"""

import json
import os
import re
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

from fairseq_freelb.core.errors import FreeLBError
from fairseq_freelb.text_files import decode_line, decode_text

RACE_LABELS = ("A", "B", "C", "D")


class MultipleChoiceFormatError(FreeLBError, ValueError):
    """Bad multiple-choice input; the message starts with ``file:line:``."""


@dataclass
class Choice:
    label: str
    text: str
    context: Optional[str] = None  # per-choice retrieved context ("para")


@dataclass
class Question:
    id: str
    stem: str
    choices: List[Choice]
    answer: Optional[str]  # the correct choice's label, None on unlabelled test data
    source: str  # which file/benchmark it came from, e.g. "ARC-Easy-Dev" or "RACE-high"
    origin: str  # "path:line", for error messages
    context: Optional[str] = None  # question-level context (RACE article, retrieved text)
    cloze: bool = False  # RACE: a "_" in the stem is the blank the option fills
    extra: Dict = field(default_factory=dict)

    @property
    def labels(self) -> List[str]:
        return [c.label for c in self.choices]

    @property
    def target(self) -> Optional[int]:
        return None if self.answer is None else self.labels.index(self.answer)

    @property
    def has_context(self) -> bool:
        return self.context is not None or any(c.context is not None for c in self.choices)


def _fail(origin: str, message: str):
    raise MultipleChoiceFormatError(f"{origin}: {message}")


def _string(value, origin: str, what: str) -> str:
    if not isinstance(value, str):
        _fail(origin, f"{what} must be a string, got {type(value).__name__}")
    return value


def _check_answer(origin: str, labels: List[str], answer) -> Optional[str]:
    if answer is None:
        return None
    answer = str(answer).strip()
    if answer not in labels:
        _fail(origin, f"answerKey {answer!r} is not among the choice labels {', '.join(labels)}")
    return answer


def _check_labels(origin: str, labels: List[str]) -> None:
    if len(set(labels)) != len(labels):
        _fail(origin, f"duplicate choice labels {', '.join(labels)}")


def question_from_json(obj, origin: str, default_source: str) -> Question:
    """One CommonsenseQA/ARC/OpenBookQA line (already parsed) as a :class:`Question`."""
    if not isinstance(obj, dict):
        _fail(origin, f"expected a JSON object, got {type(obj).__name__}")
    if "id" not in obj:
        _fail(origin, "missing 'id'")
    question = obj.get("question")
    if not isinstance(question, dict):
        _fail(origin, "missing 'question' object")
    stem = _string(question.get("stem"), origin, "question.stem")
    choices_json = question.get("choices")
    if not isinstance(choices_json, list):
        _fail(origin, "missing 'question.choices' list")
    if not choices_json:
        _fail(origin, "empty choice list")
    choices = []
    for k, choice in enumerate(choices_json):
        if not isinstance(choice, dict) or "label" not in choice or "text" not in choice:
            _fail(origin, f"choice {k} needs 'label' and 'text'")
        para = choice.get("para")
        choices.append(
            Choice(
                label=str(choice["label"]).strip(),
                text=_string(choice["text"], origin, f"choice {k} text"),
                context=None if para is None else _string(para, origin, f"choice {k} para"),
            )
        )
    labels = [c.label for c in choices]
    _check_labels(origin, labels)
    context = obj.get("context")
    extra = {}
    if obj.get("fact1") is not None:  # OpenBookQA's Additional files: the science fact the question was written from
        extra["fact1"] = _string(obj["fact1"], origin, "fact1")
    return Question(
        id=str(obj["id"]),
        stem=stem,
        choices=choices,
        answer=_check_answer(origin, labels, obj.get("answerKey")),
        source=str(obj.get("source", default_source)),
        origin=origin,
        context=None if context is None else _string(context, origin, "context"),
        cloze=bool(obj.get("cloze", False)),
        extra=extra,
    )


def _json_error(exc: json.JSONDecodeError) -> str:
    """``exc.msg`` with its column; json's own messages may already end in "at" ("... starting at")."""
    joint = " " if exc.msg.endswith(" at") else " at "
    return f"{exc.msg}{joint}column {exc.colno}"


def _json_lines(path: str) -> Iterator[Tuple[int, object]]:
    """(line number, parsed object) for every non-blank line; malformed JSON is an error."""
    with open(path, "rb") as handle:  # decoded line by line: a byte that is not UTF-8 is named at its line
        for lineno, raw in enumerate(handle, start=1):
            line = decode_line(raw, path, lineno, MultipleChoiceFormatError)
            if not line.strip():
                continue
            # Without its line ending: an error at the end of the line is at that line's last
            # column, not at "column 1" of the next line.
            line = line.rstrip("\r\n")
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                _fail(f"{path}:{lineno}", f"malformed JSON line ({_json_error(exc)})")


GENERIC_SPLIT_NAMES = {"train", "dev", "test", "valid", "val"}
# Folders of a release that say nothing about the benchmark: OpenBookQA-V1-Sep2018/Data/{Main,Additional}/.
CONTAINER_FOLDERS = {"data", "main", "additional"}
RELEASE_SUFFIX = re.compile(r"-V\d+(-[A-Za-z]{3}\d{4})?$")  # "-V1-Sep2018", "-V1-Feb2018"


def source_name(path: str) -> str:
    """The default source tag of a file: its name without extension (``ARC-Easy-Dev``).

    A bare split name (OpenBookQA's ``train.jsonl``, or ``train_complete.jsonl``
    of its Additional files) is prefixed with the nearest folder that names the
    benchmark, skipping ``Data``, ``Main`` and ``Additional`` and dropping a
    release suffix: ``OpenBookQA-V1-Sep2018/Data/Main/train.jsonl`` gives
    ``OpenBookQA-train``.
    """
    name = os.path.basename(path)
    for ext in (".jsonl", ".json", ".txt"):
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    if name.lower().endswith("_complete") and name[: -len("_complete")].lower() in GENERIC_SPLIT_NAMES:
        name = name[: -len("_complete")]
    if name.lower() in GENERIC_SPLIT_NAMES:
        folder = os.path.dirname(os.path.abspath(path))
        while os.path.basename(folder).lower() in CONTAINER_FOLDERS:
            folder = os.path.dirname(folder)
        benchmark = RELEASE_SUFFIX.sub("", os.path.basename(folder))
        if benchmark:
            name = f"{benchmark}-{name}"
    return name


def read_question_jsonl(path: str, source: Optional[str] = None) -> List[Question]:
    """All questions of a CommonsenseQA/ARC/OpenBookQA JSONL file, in file order."""
    source = source or source_name(path)
    questions = [question_from_json(obj, f"{path}:{lineno}", source) for lineno, obj in _json_lines(path)]
    _check_unique_ids(questions)
    return questions


def read_race_file(path: str, source: str) -> List[Question]:
    """The questions of one RACE ``.txt`` file (a single JSON object over the article)."""
    with open(path, "rb") as handle:
        text = decode_text(handle.read(), path, MultipleChoiceFormatError)
    text = text.rstrip()  # trailing newline(s): an error at the end stays on the last line
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"{path}:{exc.lineno}", f"malformed JSON ({_json_error(exc)})")
    origin = f"{path}:1"
    if not isinstance(obj, dict):
        _fail(origin, "expected a RACE JSON object")
    for key in ("article", "questions", "options"):
        if key not in obj:
            _fail(origin, f"missing {key!r}")
    article = _string(obj["article"], origin, "article")
    stems, options = obj["questions"], obj["options"]
    answers = obj.get("answers")
    if len(options) != len(stems) or (answers is not None and len(answers) != len(stems)):
        _fail(origin, f"{len(stems)} questions but {len(options)} option lists and "
              f"{'no' if answers is None else len(answers)} answers")
    file_id = str(obj.get("id", os.path.basename(path)))
    questions = []
    for q, (stem, opts) in enumerate(zip(stems, options)):
        where = f"{path}:1 (question {q})"
        if not isinstance(opts, list) or not opts:
            _fail(where, "empty choice list")
        if len(opts) > len(RACE_LABELS):
            _fail(where, f"{len(opts)} options; RACE has at most {len(RACE_LABELS)}")
        labels = list(RACE_LABELS[: len(opts)])
        choices = [Choice(label, _string(text, where, f"option {label}")) for label, text in zip(labels, opts)]
        questions.append(
            Question(
                id=f"{file_id}-{q}",
                stem=_string(stem, where, "question"),
                choices=choices,
                answer=_check_answer(where, labels, None if answers is None else answers[q]),
                source=source,
                origin=where,
                context=article,
                cloze=True,
            )
        )
    return questions


def _check_unique_ids(questions: List[Question]) -> None:
    seen: Dict[str, str] = {}
    for q in questions:
        if q.id in seen:
            _fail(q.origin, f"duplicate question id {q.id!r} (first at {seen[q.id]})")
        seen[q.id] = q.origin


def read_split(path: str) -> List[Question]:
    """A split: one JSONL file, or a directory read recursively in sorted order.

    A directory may mix CommonsenseQA/ARC/OpenBookQA ``*.jsonl`` files (the
    multi-task concatenation) and RACE ``*.txt`` files (the RACE layout; their
    source is ``RACE-<parent folder>``, e.g. ``RACE-high``).
    """
    if os.path.isfile(path):
        return read_question_jsonl(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no such file or directory")
    questions: List[Question] = []
    found = False
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            if name.endswith(".jsonl"):
                questions.extend(read_question_jsonl(full))
                found = True
            elif name.endswith(".txt"):
                questions.extend(read_race_file(full, f"RACE-{os.path.basename(root)}"))
                found = True
    if not found:
        raise MultipleChoiceFormatError(f"{path}: no *.jsonl or RACE *.txt files in this directory")
    _check_unique_ids(questions)
    return questions


def read_contexts(path: str) -> Dict[Tuple[str, Optional[str]], Tuple[str, str]]:
    """A retrieved-context JSONL: ``(question id, choice label or None) -> (text, "path:line")``."""
    contexts: Dict[Tuple[str, Optional[str]], Tuple[str, str]] = {}
    for lineno, obj in _json_lines(path):
        origin = f"{path}:{lineno}"
        if not isinstance(obj, dict) or "id" not in obj or "context" not in obj:
            _fail(origin, "a context line needs 'id' and 'context'")
        label = obj.get("label")
        key = (str(obj["id"]), None if label is None else str(label).strip())
        if key in contexts:
            _fail(origin, f"duplicate context for {key[0]!r}{'' if key[1] is None else ' label ' + key[1]} "
                  f"(first at {contexts[key][1]})")
        contexts[key] = (_string(obj["context"], origin, "context"), origin)
    return contexts


def attach_contexts(questions: List[Question], contexts: Dict, context_path: str) -> Dict[str, int]:
    """Put retrieved contexts on their questions; every context line must match a question.

    A choice-level entry overrides the question-level one for that choice.
    Returns counts: questions and choices that received a context, and
    questions that have none.
    """
    by_id = {q.id: q for q in questions}
    used = set()
    for (qid, label), (text, origin) in contexts.items():
        question = by_id.get(qid)
        if question is None:
            _fail(origin, f"context for unknown question id {qid!r}")
        if label is None:
            question.context = text
        else:
            if label not in question.labels:
                _fail(origin, f"context for label {label!r}, not among the choice labels "
                      f"{', '.join(question.labels)} of question {qid!r}")
            question.choices[question.labels.index(label)].context = text
        used.add(qid)
    return {
        "questions_with_context": len(used),
        "questions_without_context": sum(1 for q in questions if not q.has_context),
        "context_file": context_path,
    }


def use_fact_as_context(questions: List[Question]) -> int:
    """Put OpenBookQA's ``fact1`` in front of each question's context; returns how many had one.

    The fact goes before the question-level context and before every
    per-choice context, so that no candidate of the question is left without it.
    """
    used = 0
    for q in questions:
        fact = q.extra.get("fact1")
        if fact is None:
            continue
        used += 1
        q.context = fact if q.context is None else f"{fact} {q.context}"
        for choice in q.choices:
            if choice.context is not None:
                choice.context = f"{fact} {choice.context}"
    return used


def question_to_json(q: Question) -> Dict:
    """The record in the CommonsenseQA/ARC JSON shape (plus context, source, cloze), for preprocess."""
    choices = []
    for c in q.choices:
        entry = {"label": c.label, "text": c.text}
        if c.context is not None:
            entry["para"] = c.context
        choices.append(entry)
    obj = {"id": q.id, "question": {"stem": q.stem, "choices": choices}, "source": q.source}
    if q.answer is not None:
        obj["answerKey"] = q.answer
    if q.context is not None:
        obj["context"] = q.context
    if q.cloze:
        obj["cloze"] = True
    return obj


def benchmark_group(source: str) -> str:
    """Which Table-3 column a source belongs to (``ARC-Easy``, ``ARC-Challenge``, ``RACE-high``, ...)."""
    for group in ("ARC-Easy", "ARC-Challenge", "RACE-high", "RACE-middle"):
        if group.lower() in source.lower():
            return group
    return source
