"""The predictor file format: validation, atomic writing and safe loading of ``.safetensors`` predictor files, the
official L2P release's ``weight.txt`` importer, and the bridge between calibration statistics and files."""
