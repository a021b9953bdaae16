"""Multiple-choice QA (CommonsenseQA, ARC, OpenBookQA, RACE): formats, preprocessing, evaluation, predictions.

Commands (each has ``--help``):

* ``python -m fairseq_freelb.mc.preprocess``: official files -> a ``--task multiple_choice`` data directory
* ``python -m fairseq_freelb.mc.evaluate``: accuracy of checkpoint(s) on a labelled split (ARC: Easy, Challenge, merged)
* ``python -m fairseq_freelb.mc.predict``: leaderboard ``id,answer`` CSV (ensembles average probabilities;
  ``--group ARC-Easy`` / ``ARC-Challenge`` for the two ARC leaderboards)
* ``python -m fairseq_freelb.mc.validate``: checks a predictions file against the questions

Docs: ``docs/multiple_choice.md``.
"""
