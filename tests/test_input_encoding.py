"""Input files that are not UTF-8 stop with ``file:line``, the byte and its column, not Python's codec error.

A Latin-1 ``é`` saved by an editor used to give ``'utf-8' codec can't decode byte 0xe9 in position 1256``,
a position counted from the start of a read buffer, naming no file. GLUE TSVs are in the standard download's
layouts (tests/glue_fixtures.py), multiple-choice files in the official ones (tests/mc_fixtures.py).
"""

import json

import pytest

import mc_fixtures
from glue_fixtures import build_srcdict, make_glue_dir
from fairseq_freelb.commands import run_command
from fairseq_freelb.glue import preprocess as P
from fairseq_freelb.mc.formats import MultipleChoiceFormatError, read_contexts, read_split
from fairseq_freelb.mc.preprocess import cli_main as mc_preprocess
from fairseq_freelb.resources import gpt2_bpe_files


def _latin1_line(path, line_no, text):
    """Replace line ``line_no`` (1-based) of ``path`` by ``text`` encoded as Latin-1, as a misconfigured editor saves it."""
    lines = path.read_bytes().split(b"\n")
    lines[line_no - 1] = text.encode("latin-1")
    path.write_bytes(b"\n".join(lines))


@pytest.mark.parametrize("on_bad_row", ["fail", "skip"])
def test_a_latin1_byte_in_a_glue_tsv_names_file_line_and_column(tmp_path, capsys, on_bad_row):
    bpe = gpt2_bpe_files(dest=tmp_path / "bpe")
    make_glue_dir(tmp_path / "glue_data")
    srcdict = build_srcdict(tmp_path / "glue_data", *bpe, tmp_path / "dict.txt")
    train = tmp_path / "glue_data" / "QNLI" / "train.tsv"
    row = "6\tWhere is the café?\tThe café is on the corner.\tentailment"
    _latin1_line(train, 7, row)
    rc = run_command(P.PROG, P.main, ["--glue-dir", str(tmp_path / "glue_data"), "--srcdict", str(srcdict),
                                      "--out", str(tmp_path / "glue-bin"), "--tasks", "QNLI", "--workers", "1",
                                      "--on-bad-row", on_bad_row,
                                      "--encoder-json", str(bpe[0]), "--vocab-bpe", str(bpe[1])])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1
    column = row.index("é") + 1
    assert err[0] == (f"{P.PROG}: error: {train}:7: not valid UTF-8 (byte 0xe9 at column {column}); the file must "
                      "be UTF-8: re-save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)")
    assert not (tmp_path / "glue-bin").exists()  # nothing written, not even an empty --out


def test_the_byte_order_mark_and_multibyte_text_still_read(tmp_path):
    """MRPC's BOM and UTF-8 accents are unaffected by reading bytes line by line."""
    from fairseq_freelb.glue.benchmark_tasks import get_task
    from fairseq_freelb.glue.tsv import read_task

    make_glue_dir(tmp_path)
    rows = read_task(get_task("MRPC"), tmp_path)
    assert (tmp_path / "MRPC" / "train.tsv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert rows["train"].rows_in == 24
    text = " ".join(s for ex in rows["train"].examples for s in ex.sentences)
    assert "\ufeff" not in text


def test_a_latin1_byte_in_a_multiple_choice_jsonl_names_file_and_line(tmp_path, capsys):
    files = mc_fixtures.make_csqa(tmp_path / "csqa")
    dev = files["dev_rand_split"]
    obj = json.loads(dev.read_text().splitlines()[2])
    obj["question"]["stem"] = "Where would you drink a café crème?"
    line = json.dumps(obj, ensure_ascii=False)
    _latin1_line(dev, 3, line)
    with pytest.raises(MultipleChoiceFormatError) as info:
        read_split(str(dev))
    column = line.index("é") + 1
    assert str(info.value).startswith(f"{dev}:3: not valid UTF-8 (byte 0xe9 at column {column})")
    rc = mc_preprocess(["--destdir", str(tmp_path / "data"), "--build-dict", "--train", str(files["train_rand_split"]),
                        "--valid", str(dev)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and f"{dev}:3: not valid UTF-8" in err[0]
    assert not (tmp_path / "data").exists()


def test_a_latin1_byte_in_a_race_file_or_a_context_file_is_named_too(tmp_path):
    race = mc_fixtures.make_race(tmp_path)
    article = next(iter(sorted((race / "dev" / "high").glob("*.txt"))))
    obj = json.loads(article.read_text())
    obj["article"] = "The café is next to the river."
    text = json.dumps(obj, ensure_ascii=False, indent=1)  # several lines, the article on line 2 or later
    article.write_bytes(text.encode("latin-1"))
    line_no = text[: text.index("é")].count("\n") + 1
    with pytest.raises(MultipleChoiceFormatError, match=rf"^{article}:{line_no}: not valid UTF-8 \(byte 0xe9"):
        read_split(str(race / "dev"))
    contexts = tmp_path / "context.jsonl"
    second = '{"id": "q2", "context": "café"}'
    contexts.write_bytes(b'{"id": "q1", "context": "ok"}\n' + (second + "\n").encode("latin-1"))
    column = second.index("é") + 1
    with pytest.raises(MultipleChoiceFormatError, match=rf"^{contexts}:2: not valid UTF-8 \(byte 0xe9 at column {column}\)"):
        read_contexts(str(contexts))
