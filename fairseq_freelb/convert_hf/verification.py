"""Verification: the converted model and the Hugging Face one give the same final hidden states."""

import argparse
from pathlib import Path
from typing import Dict

import torch

from fairseq_freelb import checkpoint
from fairseq_freelb.convert_hf.reading import ConversionError, read_json
from fairseq_freelb.convert_hf.vocabulary import bpe_paths

METADATA_FILE = "convert_hf.json"

VERIFY_SENTENCES = [
    "The film is a charming, funny and deeply moving portrait of a family.",
    "A tedious, overlong mess that squanders its talented cast.",
    "It's not great -- but it isn't awful, either (3/5).",
    "Überraschend gut! Naïve café owners meet 42 robots in São Paulo.",
]


def _verification_batch(out_dir: Path, bpe_args: Dict[str, object], max_len: int, seed: int = 0) -> torch.Tensor:
    """fairseq token ids: real sentences through the converted BPE + dict.txt, then random tokens.

    Right-padded with <pad>, so both models number positions from the first token alike;
    rows are cut to ``max_len`` tokens (the model's positions).
    """
    from fairseq.data import Dictionary, encoders

    dictionary = Dictionary.load(str(out_dir / "dict.txt"))
    dictionary.add_symbol("<mask>")
    bpe = encoders.build_bpe(argparse.Namespace(**bpe_paths(out_dir, bpe_args)))
    rows = []
    for sentence in VERIFY_SENTENCES:
        ids = dictionary.encode_line(bpe.encode(sentence), append_eos=False, add_if_not_exist=False).long()
        rows.append(torch.cat([torch.tensor([dictionary.bos()]), ids[: max_len - 2], torch.tensor([dictionary.eos()])]))
    generator = torch.Generator().manual_seed(seed)
    for length in (7, 19, min(32, max_len - 2)):
        middle = torch.randint(dictionary.nspecial, len(dictionary) - 1, (length,), generator=generator)
        rows.append(torch.cat([torch.tensor([dictionary.bos()]), middle, torch.tensor([dictionary.eos()])]))
    width = max(len(r) for r in rows)
    batch = torch.full((len(rows), width), dictionary.pad(), dtype=torch.long)
    for i, r in enumerate(rows):
        batch[i, : len(r)] = r
    return batch


def verify(hf_dir, out_dir, tolerance: float = 1e-4, name=None) -> float:
    """Max |fairseq - Hugging Face| over the final hidden states of one batch; raises above ``tolerance``.

    ``name``: how the failure message names the checkpoint (default ``out_dir/model.pt``).
    """
    checkpoint.allow_fairseq_checkpoints()
    from fairseq import checkpoint_utils
    import transformers
    from transformers import AutoModel

    transformers.logging.set_verbosity_error()  # its load report lists the unused pooler
    transformers.logging.disable_progress_bar()  # keeps a failure the last line on stderr
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    meta = read_json(out_dir / METADATA_FILE)
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(out_dir / "model.pt")], arg_overrides={"data": str(out_dir)}
    )
    fairseq_model = models[0].eval()
    hf_model = AutoModel.from_pretrained(str(hf_dir), add_pooling_layer=False).eval()

    max_positions = int(meta["fairseq_args"][meta["fairseq_args"].index("--max-positions") + 1])
    tokens = _verification_batch(out_dir, meta["bpe"], max_positions)
    source_ids = torch.tensor(meta["source_ids"])
    pad = task.source_dictionary.pad()
    mask = tokens.ne(pad)
    with torch.no_grad():
        fairseq_states, _ = fairseq_model(tokens, features_only=True)
        hf_states = hf_model(
            input_ids=source_ids[tokens], attention_mask=mask.long(), token_type_ids=torch.zeros_like(tokens)
        ).last_hidden_state
    diff = (fairseq_states - hf_states).abs()[mask].max().item()
    if not diff <= tolerance:
        raise ConversionError(
            f"{name or out_dir / 'model.pt'}: verification failed: max |fairseq - transformers| of the final hidden states "
            f"is {diff:.3g} > {tolerance:g}"
        )
    return diff


