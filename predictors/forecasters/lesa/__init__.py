"""LESA: learned, stage-aware, non-linear forecasting (KAN experts per noise stage). ``model`` (the forecaster),
``kan`` (the expert network), ``train`` (fitting it from a trajectory sample), ``engine`` (its runtime)."""
