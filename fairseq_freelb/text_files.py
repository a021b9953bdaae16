"""Decoding input text files line by line, so that bytes that are not UTF-8 are reported at ``file:line``.

Python's own error (``'utf-8' codec can't decode byte 0xe9 in position 1256``)
counts bytes from the start of a read buffer and names no file. The GLUE TSV
reader and the multiple-choice JSONL readers read bytes and decode each line
with :func:`decode_line` instead. No fairseq import.
"""

import os
from typing import Type, Union


def decode_line(raw: bytes, path: Union[str, os.PathLike], line_no: int, error: Type[Exception]) -> str:
    """``raw`` as UTF-8 text; else ``error("<path>:<line>: not valid UTF-8 ...")`` naming the byte and its column."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        column = len(raw[: exc.start].decode("utf-8", errors="replace")) + 1
        raise error(
            f"{path}:{line_no}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {column}); "
            "the file must be UTF-8: re-save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None


def decode_text(data: bytes, path: Union[str, os.PathLike], error: Type[Exception]) -> str:
    """A whole file's bytes as UTF-8 text; a bad byte is reported at its line, as :func:`decode_line` does."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line_end = data.find(b"\n", exc.start)
        line = data[line_start : len(data) if line_end < 0 else line_end]
        decode_line(line, path, data.count(b"\n", 0, exc.start) + 1, error)
        raise  # not reached: the line holds the bad byte
