"""Forecasters: one file per predictor. The training-free ones (FORA, TaylorSeer, Spectrum, FoCa), the learned
linear L2P (and its two CFG variants over both streams), and the learned non-linear LESA (its own sub-package).
``registry`` names the training-free methods the Forecast Cache node offers."""
