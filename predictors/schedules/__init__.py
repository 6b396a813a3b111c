"""Schedules: which steps of a run are really computed. ``placements`` (the placements, the user's ``ScheduleConfig``
and ``plan_schedule``), ``progressive`` (Spectrum's growing windows), ``budget`` (how many steps a run computes, the
guards), ``optimizer`` (the expected final-latent error of a schedule from the calibration, and the search that
minimises it), ``error_growth`` (how a step's error grows to the result), ``adaptive`` (the per-run controller that
follows measured forecast residuals), ``safety_net``."""
