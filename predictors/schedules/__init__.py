"""Schedules: which steps of a run are really computed. ``placements`` (the placements and guards), ``optimizer``
(the expected final-latent error of a schedule from the calibration, and the search that minimises it),
``adaptive`` (the per-run controller that follows measured forecast residuals)."""
