"""Predictor files: the ``.safetensors`` format and its validation (``predictor_file``), atomic writing and safe
loading (``storage``), the official L2P ``weight.txt`` importer (``official``), the bridge between calibration
statistics and files (``calibration_file``), the model identity and provenance a file records (``identity``,
``provenance``), merging two files (``merge``), the locked read-merge-replace update (``lock``, ``update``), L2P
Cache's learned files, one per setup (``learned``), and the ``python3 -m predictors.files merge / info`` command
(``__main__``)."""
