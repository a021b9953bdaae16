#!/usr/bin/env bash
# RACE and the ARC multi-task set -> two --task multiple_choice data directories.
#
#   RACE_DIR=/path/to/RACE ARC_DIR=/path/to/ARC-V1-Feb2018 OBQA_DIR=/path/to/OpenBookQA-V1-Sep2018/Data/Main \
#   DICT=roberta.large/dict.txt examples/arc/preprocess.sh
#
# RACE_DIR: RACE/{train,dev,test}/{high,middle}/*.txt -> $RACE_DEST (default data/race).
# ARC_DIR: ARC-Easy/ and ARC-Challenge/ with ARC-{Easy,Challenge}-{Train,Dev,Test}.jsonl;
# OBQA_DIR: OpenBookQA-V1-Sep2018/Data/Main (train.jsonl, dev.jsonl, test.jsonl; sources
# OpenBookQA-train/-dev/-test), or Data/Additional ({split}_complete.jsonl, which carry the
# fact1 each question was written from; OBQA_FACT1=1 puts it in front of the context,
# otherwise it is ignored and preprocessing says so) ->
# $ARC_DEST (default data/arc-mtl): train = ARC-Easy + ARC-Challenge + OpenBookQA
# (+ EXTRA_TRAIN, e.g. Regents JSONL files in the same format), valid = ARC dev,
# test = ARC test (for the two leaderboards, predict with --group ARC-Easy and
# --group ARC-Challenge), plus obqa_valid and obqa_test splits.
# Optional retrieved context (JSONL lines {id, [label], context}):
# ARC_TRAIN_CONTEXT, ARC_VALID_CONTEXT, ARC_TEST_CONTEXT (space-separated lists).
# Leave RACE_DIR or ARC_DIR unset to skip that part. DICT, SMOKE, ENCODER_JSON,
# VOCAB_BPE, MAX_POSITIONS as in examples/csqa/preprocess.sh. With SMOKE=1 and
# no DICT one dictionary is built from RACE and ARC together, so that an ARC
# model can start from the RACE checkpoint.
source "$(dirname "${BASH_SOURCE[0]}")/../multiple_choice_common.sh"  # MAX_POSITIONS
PYTHON=${PYTHON:-python}
RACE_DEST=${RACE_DEST:-data/race}
ARC_DEST=${ARC_DEST:-data/arc-mtl}
BPE_ARGS=()
if [[ -n "${ENCODER_JSON:-}" ]]; then BPE_ARGS=(--encoder-json "$ENCODER_JSON" --vocab-bpe "$VOCAB_BPE"); fi
# OpenBookQA's Main files are {split}.jsonl, its Additional files {split}_complete.jsonl.
OBQA_SUFFIX=""
if [[ -n "${OBQA_DIR:-}" && -f "$OBQA_DIR/train_complete.jsonl" ]]; then OBQA_SUFFIX=_complete; fi
FACT_ARGS=()
if [[ "${OBQA_FACT1:-0}" == 1 ]]; then FACT_ARGS=(--fact1-context); fi
mc_preprocess() { "$PYTHON" -m fairseq_freelb.mc.preprocess --max-positions "$MAX_POSITIONS" ${BPE_ARGS[@]+"${BPE_ARGS[@]}"} "$@"; }

if [[ -z "${DICT:-}" ]]; then
  if [[ "${SMOKE:-0}" != 1 ]]; then
    echo "set DICT to the pretrained model's dict.txt (or SMOKE=1 for a tiny random model)" >&2
    exit 1
  fi
  # One dictionary for every file, so the RACE -> ARC chain shares the embedding table.
  ALL=()
  [[ -n "${RACE_DIR:-}" ]] && ALL+=("$RACE_DIR/train" "$RACE_DIR/dev" "$RACE_DIR/test")
  [[ -n "${ARC_DIR:-}" ]] && ALL+=("$ARC_DIR/ARC-Easy" "$ARC_DIR/ARC-Challenge")
  [[ -n "${OBQA_DIR:-}" ]] && ALL+=("$OBQA_DIR/train$OBQA_SUFFIX.jsonl" "$OBQA_DIR/dev$OBQA_SUFFIX.jsonl"
                                    "$OBQA_DIR/test$OBQA_SUFFIX.jsonl")
  DICT_DIR=$(mktemp -d)
  trap 'rm -rf "$DICT_DIR"' EXIT
  # One split per input, so that a labelled and an unlabelled file need not agree on answerKey.
  SPLIT_ARGS=()
  for k in "${!ALL[@]}"; do SPLIT_ARGS+=(--split-name "part$k=${ALL[$k]}"); done
  mc_preprocess --destdir "$DICT_DIR" --build-dict "${SPLIT_ARGS[@]}" ${FACT_ARGS[@]+"${FACT_ARGS[@]}"}
  DICT="$DICT_DIR/dict.txt"
fi

if [[ -n "${RACE_DIR:-}" ]]; then
  mc_preprocess --destdir "$RACE_DEST" --dict "$DICT" \
    --train "$RACE_DIR/train" --valid "$RACE_DIR/dev" --test "$RACE_DIR/test" "$@"
fi

if [[ -n "${ARC_DIR:-}" ]]; then
  OBQA_TRAIN=(); OBQA_SPLITS=()
  if [[ -n "${OBQA_DIR:-}" ]]; then
    OBQA_TRAIN=("$OBQA_DIR/train$OBQA_SUFFIX.jsonl")
    OBQA_SPLITS=(--split-name "obqa_valid=$OBQA_DIR/dev$OBQA_SUFFIX.jsonl"
                 --split-name "obqa_test=$OBQA_DIR/test$OBQA_SUFFIX.jsonl")
  fi
  CONTEXT_ARGS=()
  [[ -n "${ARC_TRAIN_CONTEXT:-}" ]] && CONTEXT_ARGS+=(--train-context $ARC_TRAIN_CONTEXT)
  [[ -n "${ARC_VALID_CONTEXT:-}" ]] && CONTEXT_ARGS+=(--valid-context $ARC_VALID_CONTEXT)
  [[ -n "${ARC_TEST_CONTEXT:-}" ]] && CONTEXT_ARGS+=(--test-context $ARC_TEST_CONTEXT)
  mc_preprocess --destdir "$ARC_DEST" --dict "$DICT" \
    --train "$ARC_DIR/ARC-Easy/ARC-Easy-Train.jsonl" "$ARC_DIR/ARC-Challenge/ARC-Challenge-Train.jsonl" \
            ${OBQA_TRAIN[@]+"${OBQA_TRAIN[@]}"} ${EXTRA_TRAIN:-} \
    --valid "$ARC_DIR/ARC-Easy/ARC-Easy-Dev.jsonl" "$ARC_DIR/ARC-Challenge/ARC-Challenge-Dev.jsonl" \
    --test "$ARC_DIR/ARC-Easy/ARC-Easy-Test.jsonl" "$ARC_DIR/ARC-Challenge/ARC-Challenge-Test.jsonl" \
    ${OBQA_SPLITS[@]+"${OBQA_SPLITS[@]}"} ${CONTEXT_ARGS[@]+"${CONTEXT_ARGS[@]}"} \
    ${FACT_ARGS[@]+"${FACT_ARGS[@]}"} "$@"
fi
