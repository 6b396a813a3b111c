"""Calibration statistics and what is fitted from them: the joint Gram over (stream, step) and its recorder, the
least-squares fits that depend on the data only through it, its resampling to another sigma grid, and the
fixed-size trajectory sample that non-linear predictors train on."""
