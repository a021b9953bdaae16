"""What every multi-seed comparison shares: the result store, the pool of runs, and the statistics over seeds.

Used by ``python -m fairseq_freelb.experiment`` (the held-out protocol) and by
``python -m fairseq_freelb.glue.report`` (the paper-style dev table), so both
resume, refuse and summarise the same way:

- :mod:`.store`: ``results.json``, each run stored with the fingerprint of what
  produced it (task, data digest, model, settings, fairseq flags); reused only
  on an exact match; written aside and moved into place after every run;
- :mod:`.pool`: runs ``parallel`` jobs at a time and stops starting new ones
  after a failure;
- :mod:`.stats`: mean/median ± std over seeds, and the paired difference with
  its 95 % interval and win count.

Standard library (and scipy for the t quantile) only, so any command may use it.
"""
