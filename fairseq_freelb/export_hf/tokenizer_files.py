"""The tokenizer files: ``tokenizer.json`` whose template lays texts out as the fairseq task did.

The text -> tokens step is transformers' own ``BertTokenizer`` / ``RobertaTokenizer``
pipeline (normalizer, pre-tokenizer, WordPiece or byte-level BPE), built from the
exported vocabulary files, the same classes fairseq's ``--bpe bert`` uses and the same
GPT-2 algorithm as fairseq's ``--bpe gpt2``. Only the special tokens around the texts
are replaced: a ``TemplateProcessing`` post-processor writes the fairseq task's layout

* single text: ``[init] A </s>``
* pair: ``[init] A </s> [separator] B </s>``

(``--init-token`` / ``--separator-token`` of the task; ``--task multiple_choice`` has no
separator), all with token type 0 (fairseq's RoBERTa has no segments; the exported
token-type embeddings are zero). BERT's own template would give ``[CLS] A [SEP] B [SEP]``
for a pair where fairseq's GLUE recipe trained on ``[CLS] A [SEP] [SEP] B [SEP]``.

``tokenizer_config.json`` names the generic ``PreTrainedTokenizerFast``, which loads
``tokenizer.json`` as written: ``BertTokenizer``/``RobertaTokenizer`` would rebuild their
own template on loading. For byte-level BPE ``split_special_tokens`` is on, because
fairseq's GPT-2 BPE reads a literal ``<s>`` or ``<mask>`` in a text as text.
"""

import json
from pathlib import Path
from typing import Dict, List

from fairseq_freelb.export_hf.source import Layout
from fairseq_freelb.export_hf.vocabulary import WORDPIECE, Vocabulary


def template(vocabulary: Vocabulary, layout: Layout, eos: int) -> Dict[str, object]:
    """The single and pair templates as token lists (fairseq indices turned into Hugging Face tokens)."""
    def tok(index):
        return [vocabulary.hf_token(index)] if index is not None else []

    single = [*tok(layout.init), "$A", *tok(eos)]
    pair = [*single, *tok(layout.separator), "$B", *tok(eos)]
    return {"single": single, "pair": pair}


def _backend(vocabulary: Vocabulary, out_dir: Path):
    """transformers' own fast tokenizer of the family, built from the vocabulary files in ``out_dir``."""
    import transformers

    names = {
        "unk_token": vocabulary.specials["<unk>"], "pad_token": vocabulary.specials["<pad>"],
        "cls_token": vocabulary.specials["<s>"], "sep_token": vocabulary.specials["</s>"],
        "mask_token": vocabulary.specials["<mask>"],
    }
    if vocabulary.kind == WORDPIECE:
        return transformers.BertTokenizerFast(str(out_dir / "vocab.txt"), do_lower_case=vocabulary.lowercase, **names)
    vocab = json.loads((out_dir / "vocab.json").read_text(encoding="utf-8"))
    merges = (out_dir / "merges.txt").read_text(encoding="utf-8").split("\n")[1:]
    merges = [tuple(m.split(" ")) for m in merges if m]
    major = int(transformers.__version__.split(".")[0])
    if major >= 5:  # takes the vocabulary and merges themselves
        return transformers.RobertaTokenizerFast(vocab, merges, bos_token=names["cls_token"],
                                                 eos_token=names["sep_token"], **names)
    return transformers.RobertaTokenizerFast(str(out_dir / "vocab.json"), str(out_dir / "merges.txt"),
                                             bos_token=names["cls_token"], eos_token=names["sep_token"], **names)


def write_tokenizer(vocabulary: Vocabulary, layout: Layout, eos: int, max_positions: int, out_dir: Path) -> List[str]:
    """Write ``tokenizer.json`` and ``tokenizer_config.json`` next to the vocabulary files; returns their names."""
    from tokenizers.processors import TemplateProcessing

    tokenizer = _backend(vocabulary, out_dir)
    shape = template(vocabulary, layout, eos)
    specials = sorted({t for t in shape["pair"] if t not in ("$A", "$B")})
    vocab = {t: i for i, t in enumerate(vocabulary.tokens)}
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single=" ".join(shape["single"]), pair=" ".join(shape["pair"]),  # every piece type 0: no segments
        special_tokens=[(t, vocab[t]) for t in specials],
    )
    tokenizer.backend_tokenizer.save(str(out_dir / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_positions,
        "padding_side": "right",  # fairseq pads on the right; positions are counted from the first token alike
        "model_input_names": ["input_ids", "attention_mask"],
        "bos_token": vocabulary.specials["<s>"], "eos_token": vocabulary.specials["</s>"],
        "cls_token": vocabulary.specials["<s>"], "sep_token": vocabulary.specials["</s>"],
        "unk_token": vocabulary.specials["<unk>"], "pad_token": vocabulary.specials["<pad>"],
        "mask_token": vocabulary.specials["<mask>"],
        "clean_up_tokenization_spaces": False,
    }
    if vocabulary.kind != WORDPIECE:
        config["split_special_tokens"] = True
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=1, ensure_ascii=False), encoding="utf-8")
    return ["tokenizer.json", "tokenizer_config.json"]
