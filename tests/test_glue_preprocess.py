"""GLUE preprocessing on fixtures in the standard download's layouts (tests/glue_fixtures.py)."""

import json
from pathlib import Path

import pytest

from glue_fixtures import MNLI_LABELS, STRAY_QUOTES, build_srcdict, make_glue_dir
from fairseq_freelb.commands import run_command
from fairseq_freelb.glue import preprocess as P
from fairseq_freelb.glue import tsv as T
from fairseq_freelb.glue.benchmark_tasks import TASKS, get_task
from fairseq_freelb.resources import gpt2_bpe_files


@pytest.fixture(scope="module")
def bpe_files(tmp_path_factory):
    return gpt2_bpe_files(dest=tmp_path_factory.mktemp("bpe"))


@pytest.fixture(scope="module")
def glue(tmp_path_factory, bpe_files):
    root = tmp_path_factory.mktemp("glue")
    counts = make_glue_dir(root / "glue_data", bad_row=True)
    srcdict = build_srcdict(root / "glue_data", *bpe_files, root / "dict.txt")
    rc = P.main([
        "--glue-dir", str(root / "glue_data"), "--srcdict", str(srcdict), "--out", str(root / "bin"),
        "--on-bad-row", "skip", "--workers", "2",
        "--encoder-json", str(bpe_files[0]), "--vocab-bpe", str(bpe_files[1]),
    ])
    assert rc == 0
    return root, counts


def _decode(bin_dir: Path, split: str, bpe_files):
    """Binarized BPE ids -> text, independently of the preprocessing code."""
    from fairseq.data import Dictionary, data_utils
    from fairseq.data.encoders.gpt2_bpe_utils import get_encoder

    dictionary = Dictionary.load(str(bin_dir / "dict.txt"))
    dataset = data_utils.load_indexed_dataset(str(bin_dir / split), dictionary)
    encoder = get_encoder(str(bpe_files[0]), str(bpe_files[1]))
    out = []
    for i in range(len(dataset)):
        ids = dataset[i].tolist()
        assert ids[-1] == dictionary.eos()
        out.append(encoder.decode([int(dictionary[t]) for t in ids[:-1]]))
    return out


def _column(path: Path, col: int, skip_header: bool):
    lines = path.read_text(encoding="utf-8-sig").splitlines()[1 if skip_header else 0:]
    return [line.split("\t")[col].strip() for line in lines]


def test_counts_in_and_out_for_every_split(glue):
    root, counts = glue
    for name, splits in counts.items():
        meta = json.loads((root / "bin" / f"{name}-bin" / "meta.json").read_text())
        assert {s: v["rows_out"] for s, v in meta["splits"].items()} == splits, name
        for split, v in meta["splits"].items():
            assert v["rows_in"] == v["rows_out"] + v["skipped"]


def test_bad_row_is_skipped_and_listed_not_dropped_silently(glue):
    root, _ = glue
    meta = json.loads((root / "bin" / "QQP-bin" / "meta.json").read_text())
    assert meta["splits"]["train"]["rows_in"] == 25 and meta["splits"]["train"]["skipped"] == 1
    listed = (root / "bin" / "QQP-bin" / "bad_rows.txt").read_text()
    assert "QQP/train.tsv:7: expected 6 tab-separated columns, found 5" in listed


def test_sentences_survive_bpe_and_binarizing(glue, bpe_files):
    """Decoding the binarized ids gives back each sentence: stray quotes, empty strings, accents."""
    root, _ = glue
    qqp = root / "bin" / "QQP-bin"
    src = root / "glue_data" / "QQP" / "train.tsv"
    lines = src.read_text().splitlines()[1:]
    good = [line.split("\t") for line in lines if len(line.split("\t")) == 6]
    assert _decode(qqp / "input0", "train", bpe_files) == [c[3] for c in good]
    assert _decode(qqp / "input1", "train", bpe_files) == [c[4] for c in good]
    assert "" in [c[4] for c in good]  # the empty question made it through
    assert any(q in [c[3] for c in good] for q in STRAY_QUOTES)

    mnli = root / "bin" / "MNLI-bin"
    for split, filename in (("valid_mismatched", "dev_mismatched.tsv"), ("test", "test_matched.tsv")):
        assert _decode(mnli / "input0", split, bpe_files) == _column(root / "glue_data" / "MNLI" / filename, 8, True)
    # CoLA train has no header: the first line is an example.
    cola = _column(root / "glue_data" / "CoLA" / "train.tsv", 3, False)
    assert _decode(root / "bin" / "CoLA-bin" / "input0", "train", bpe_files) == cola
    # MRPC train starts with a byte-order mark, which must not reach the header check or the text.
    mrpc = _column(root / "glue_data" / "MRPC" / "train.tsv", 4, True)
    assert _decode(root / "bin" / "MRPC-bin" / "input1", "train", bpe_files) == mrpc
    # RTE's test set has an empty second sentence.
    assert _decode(root / "bin" / "RTE-bin" / "input1", "test", bpe_files)[0] == ""


def test_labels_through_the_label_dictionary(glue):
    from fairseq.data import Dictionary, data_utils

    root, _ = glue
    mnli = root / "bin" / "MNLI-bin"
    labels = Dictionary.load(str(mnli / "label" / "dict.txt"))
    assert sorted(labels.symbols[labels.nspecial:]) == sorted(MNLI_LABELS)
    dataset = data_utils.load_indexed_dataset(str(mnli / "label" / "valid"), labels)
    decoded = [labels[int(dataset[i][0])] for i in range(len(dataset))]
    assert decoded == _column(root / "glue_data" / "MNLI" / "dev_matched.tsv", -1, True)
    # Test sets are binarized without labels.
    for name in TASKS:
        label_dir = root / "bin" / f"{name}-bin" / "label"
        assert not list(label_dir.glob("test*")), name


def test_stsb_scores_scaled_to_unit_interval(glue):
    root, _ = glue
    scores = [float(x) for x in _column(root / "glue_data" / "STS-B" / "dev.tsv", 9, True)]
    written = [float(x) for x in (root / "bin" / "STS-B-bin" / "label" / "valid.label").read_text().split()]
    assert written == pytest.approx([s / 5 for s in scores])
    assert min(written) == 0.0 and max(written) == 1.0


def test_ax_uses_mnli_dictionaries_and_test_ids_are_kept(glue):
    root, counts = glue
    mnli = root / "bin" / "MNLI-bin"
    assert (mnli / "input0" / "test_ax.bin").is_file() and (mnli / "input1" / "test_ax.bin").is_file()
    assert (mnli / "input0" / "dict.txt").read_text() == (root / "dict.txt").read_text()
    assert (mnli / "index" / "test_ax.index").read_text().split() == [str(i) for i in range(counts["MNLI"]["test_ax"])]
    qqp_ids = (root / "bin" / "QQP-bin" / "index" / "test.index").read_text().split()
    assert qqp_ids == _column(root / "glue_data" / "QQP" / "test.tsv", 0, True)


def _task_dir(tmp_path, name):
    src = tmp_path / "glue_data"
    make_glue_dir(src)
    return src, get_task(name)


def test_bad_rows_fail_with_file_and_line(tmp_path):
    src, task = _task_dir(tmp_path, "RTE")
    path = src / "RTE" / "train.tsv"
    lines = path.read_text().splitlines()
    lines[3] = "\t".join(lines[3].split("\t")[:3] + ["maybe"])  # unknown label on line 4
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(T.GlueFormatError, match=r"RTE/train.tsv:4: unknown label 'maybe'.*--on-bad-row skip"):
        T.read_task(task, src, on_bad_row="fail")
    rows = T.read_task(task, src, on_bad_row="skip")["train"]
    assert rows.rows_in == 24 and len(rows.examples) == 23 and rows.bad_rows[0].endswith(":4: unknown label 'maybe' (expected one of entailment, not_entailment)")


def test_test_rows_are_never_skipped(tmp_path):
    src, task = _task_dir(tmp_path, "SST-2")
    with open(src / "SST-2" / "test.tsv", "a") as handle:
        handle.write("only-one-column\n")
    with pytest.raises(T.GlueFormatError, match=r"SST-2/test.tsv:10: expected 2 tab-separated columns, found 1 .*cannot be skipped"):
        T.read_task(task, src, on_bad_row="skip")


def test_wrong_header_and_stsb_range_are_reported(tmp_path):
    src, task = _task_dir(tmp_path, "QNLI")
    path = src / "QNLI" / "dev.tsv"
    path.write_text(path.read_text().replace("index\tquestion\tsentence\tlabel", "index\tsentence1\tsentence2\tlabel", 1))
    with pytest.raises(T.GlueFormatError, match=r"QNLI/dev.tsv:1: header column 1 is 'sentence1', expected 'question'"):
        T.read_task(task, src)
    stsb = src / "STS-B" / "train.tsv"
    lines = stsb.read_text().splitlines()
    lines[2] = "\t".join(lines[2].split("\t")[:9] + ["5.5"])
    stsb.write_text("\n".join(lines) + "\n")
    with pytest.raises(T.GlueFormatError, match=r"STS-B/train.tsv:3: score 5.5 outside \[0, 5\]"):
        T.read_task(get_task("STS-B"), src)


def test_missing_test_file_is_warned_missing_dev_is_fatal(tmp_path, caplog):
    src, task = _task_dir(tmp_path, "WNLI")
    (src / "WNLI" / "test.tsv").unlink()
    assert set(T.read_task(task, src)) == {"train", "valid"}
    assert "WNLI-bin gets no test, so a submission will lack WNLI.tsv" in caplog.text
    (src / "WNLI" / "dev.tsv").unlink()
    with pytest.raises(FileNotFoundError, match="WNLI/dev.tsv: WNLI valid file not found"):
        T.read_task(task, src)


def test_cli_reports_bad_row_as_one_line(tmp_path, bpe_files, capsys):
    src = tmp_path / "glue_data"
    make_glue_dir(src, bad_row=True)
    srcdict = build_srcdict(src, *bpe_files, tmp_path / "dict.txt")
    rc = run_command(P.PROG, P.main, ["--glue-dir", str(src), "--srcdict", str(srcdict), "--out", str(tmp_path / "bin"), "--tasks", "QQP,RTE",
                 "--encoder-json", str(bpe_files[0]), "--vocab-bpe", str(bpe_files[1])])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "QQP/train.tsv:7: expected 6 tab-separated columns, found 5" in err[0]
    assert not (tmp_path / "bin" / "RTE-bin").exists()  # nothing is written before every file is read


# --------------------------------------------------------------------------- label order, truncation, atomic folders, missing splits


def _preprocess(src, out, bpe_files, srcdict, *extra):
    return run_command(P.PROG, P.main, [
        "--glue-dir", str(src), "--srcdict", str(srcdict), "--out", str(out), "--workers", "1",
        "--encoder-json", str(bpe_files[0]), "--vocab-bpe", str(bpe_files[1]), *extra,
    ])


def _relabel_train(path: Path, label: str, every: int = 1):
    """Set the label column (the last) of every ``every``-th training row to ``label``."""
    lines = path.read_text().splitlines()
    for k in range(1, len(lines), every):
        lines[k] = "\t".join(lines[k].split("\t")[:-1] + [label])
    path.write_text("\n".join(lines) + "\n")


def test_label_order_is_glue_order_whatever_the_label_counts(tmp_path, bpe_files):
    """Re-preprocessing after the label balance changes must not reorder label/dict.txt."""
    src = tmp_path / "glue_data"
    make_glue_dir(src)
    srcdict = build_srcdict(src, *bpe_files, tmp_path / "dict.txt")
    orders = []
    for majority in ("not_entailment", "entailment"):
        _relabel_train(src / "RTE" / "train.tsv", majority, every=1)
        _relabel_train(src / "RTE" / "train.tsv", "entailment" if majority == "not_entailment" else "not_entailment", 5)
        assert _preprocess(src, tmp_path / "bin", bpe_files, srcdict, "--tasks", "RTE") == 0
        orders.append([line.split()[0] for line in (tmp_path / "bin" / "RTE-bin" / "label" / "dict.txt").read_text().splitlines()])
    assert orders == [["entailment", "not_entailment"]] * 2
    meta = json.loads((tmp_path / "bin" / "RTE-bin" / "meta.json").read_text())
    assert meta["label_order"] == "glue" and meta["labels"] == ["entailment", "not_entailment"]


def test_long_pairs_keep_both_sentences_and_cuts_are_counted(tmp_path, bpe_files, capsys):
    """Longest-first truncation at preprocessing; fairseq's truncate dropped the hypothesis."""
    from fairseq_freelb.glue.binarize import fit_to_length

    assert fit_to_length([list(range(50)), list(range(6))], 20) == ([list(range(14)), list(range(6))], True)
    assert fit_to_length([list(range(9)), list(range(9))], 10) == ([list(range(5)), list(range(5))], True)
    assert fit_to_length([[1, 2], [3]], 3) == ([[1, 2], [3]], False)

    src = tmp_path / "glue_data"
    make_glue_dir(src)
    path = src / "RTE" / "test.tsv"
    lines = path.read_text().splitlines()
    cols = lines[2].split("\t")
    lines[2] = "\t".join([cols[0], " ".join(["premise"] * 80), "The hypothesis survives."])
    path.write_text("\n".join(lines) + "\n")
    srcdict = build_srcdict(src, *bpe_files, tmp_path / "dict.txt")
    assert _preprocess(src, tmp_path / "bin", bpe_files, srcdict, "--tasks", "RTE", "--max-positions", "40") == 0
    assert "RTE test: 8 rows in, 8 out, 0 skipped, 1 pairs truncated to 40 positions" in capsys.readouterr().out
    meta = json.loads((tmp_path / "bin" / "RTE-bin" / "meta.json").read_text())
    assert meta["splits"]["test"]["truncated"] == 1 and meta["splits"]["train"]["truncated"] == 0
    premise = _decode(tmp_path / "bin" / "RTE-bin" / "input0", "test", bpe_files)[1]
    hypothesis = _decode(tmp_path / "bin" / "RTE-bin" / "input1", "test", bpe_files)[1]
    assert hypothesis == "The hypothesis survives."
    assert premise.startswith(" ".join(["premise"] * 5)) and len(premise.split()) < 80


@pytest.mark.parametrize("content", ["", "index\tsentence1\tsentence2\n", "index\tsentence1\tsentence2\r\n\r\n"])
def test_empty_test_file_is_one_line_naming_it(tmp_path, bpe_files, content, capsys):
    src = tmp_path / "glue_data"
    make_glue_dir(src)
    (src / "RTE" / "test.tsv").write_text(content, newline="")
    srcdict = build_srcdict(src, *bpe_files, tmp_path / "dict.txt")
    rc = _preprocess(src, tmp_path / "bin", bpe_files, srcdict, "--tasks", "RTE")
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert str(src / "RTE" / "test.tsv") in err[0] and ("no examples" in err[0] or "empty file" in err[0])
    assert not (tmp_path / "bin" / "RTE-bin").exists()


def test_failed_run_keeps_the_previous_good_bin(tmp_path, bpe_files, monkeypatch):
    """<TASK>-bin is built aside and swapped in only when complete."""
    from fairseq_freelb.glue import binarize as B

    src = tmp_path / "glue_data"
    make_glue_dir(src)
    srcdict = build_srcdict(src, *bpe_files, tmp_path / "dict.txt")
    assert _preprocess(src, tmp_path / "bin", bpe_files, srcdict, "--tasks", "RTE") == 0
    good = {p.relative_to(tmp_path / "bin"): p.read_bytes() for p in (tmp_path / "bin").rglob("*") if p.is_file()}
    real, calls = B.binarize, []

    def binarize_then_fail(*args, **kwargs):  # the disk fills up while the labels are binarized
        calls.append(args[2])
        if args[2].name == "label":
            raise OSError("No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(B, "binarize", binarize_then_fail)
    with pytest.raises(OSError):
        P.main(["--glue-dir", str(src), "--srcdict", str(srcdict), "--out", str(tmp_path / "bin"), "--tasks", "RTE",
                "--workers", "1", "--encoder-json", str(bpe_files[0]), "--vocab-bpe", str(bpe_files[1])])
    assert calls  # it did fail late
    after = {p.relative_to(tmp_path / "bin"): p.read_bytes() for p in (tmp_path / "bin").rglob("*") if p.is_file()}
    assert after == good  # nothing half-written beside or inside the good folder


def test_trailing_blank_lines_end_the_file_a_blank_line_inside_is_a_bad_row(tmp_path):
    src, task = _task_dir(tmp_path, "RTE")
    path = src / "RTE" / "train.tsv"
    path.write_text(path.read_text() + "\n\n")
    assert len(T.read_task(task, src)["train"].examples) == 24
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:5] + [""] + lines[5:]) + "\n")
    with pytest.raises(T.GlueFormatError, match=r"RTE/train.tsv:6: expected 4 tab-separated columns, found 1"):
        T.read_task(task, src)


def test_fail_mode_reports_every_bad_row_of_the_file(tmp_path, caplog):
    src, task = _task_dir(tmp_path, "RTE")
    path = src / "RTE" / "train.tsv"
    lines = path.read_text().splitlines()
    for k in (3, 8, 20):
        lines[k] = "\t".join(lines[k].split("\t")[:3] + ["maybe"])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(T.GlueFormatError) as info:
        T.read_task(task, src)
    message = str(info.value)
    assert "\n" not in message and "3 bad rows" in message
    for line_no in (4, 9, 21):
        assert f"line {line_no}: unknown label 'maybe'" in message
        assert f"train.tsv:{line_no}: unknown label" in caplog.text


def test_default_processes_the_tasks_present_and_lists_the_absent(tmp_path, bpe_files, capsys):
    full = tmp_path / "full"
    make_glue_dir(full)
    src = tmp_path / "glue_data"
    src.mkdir()
    for name in ("RTE", "SST-2"):
        (full / name).rename(src / name)
    srcdict = build_srcdict(src, *bpe_files, tmp_path / "dict.txt")
    assert _preprocess(src, tmp_path / "bin", bpe_files, srcdict) == 0
    out = capsys.readouterr().out
    assert "absent from" in out and "not processed: CoLA, MRPC, STS-B, QQP, MNLI, QNLI, WNLI" in out
    assert sorted(p.name for p in (tmp_path / "bin").iterdir()) == ["RTE-bin", "SST-2-bin"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _preprocess(empty, tmp_path / "bin2", bpe_files, srcdict) == 1
    assert "none of the GLUE task folders" in capsys.readouterr().err


def test_mnli_without_the_diagnostic_set_says_what_is_missing(tmp_path, bpe_files, caplog):
    """A missing split (preprocessing half): a plain message, and meta.json records the missing split."""
    src = tmp_path / "glue_data"
    make_glue_dir(src, n_train=12, n_dev=6, n_test=4)
    (src / "diagnostic" / "diagnostic.tsv").unlink()
    srcdict = build_srcdict(src, *bpe_files, tmp_path / "dict.txt")
    assert _preprocess(src, tmp_path / "bin", bpe_files, srcdict, "--tasks", "MNLI") == 0
    assert "MNLI: no diagnostic set" in caplog.text and "a submission will lack AX.tsv" in caplog.text
    assert "--ax-file" in caplog.text
    meta = json.loads((tmp_path / "bin" / "MNLI-bin" / "meta.json").read_text())
    assert meta["missing_splits"] == ["test_ax"]
