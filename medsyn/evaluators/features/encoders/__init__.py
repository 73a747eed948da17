"""Encoders users bring, as feature spaces named ``source:target`` (registered in
``features/__init__.py``): their weights are local files, read without running code, and their
preprocessing is the one of the code whose numbers they are meant to match.

    files.py        local files and folders, safe reading, sha256
    preprocess.py   PIL resize / crop / normalisation pipelines, transformers' processor config
    extractor.py    EncoderExtractor: pipeline + the library's forward
    hf.py           hf:<folder>, rad-dino:<folder> (CheXGenBench), cmmd-clip:<folder> (CMMD)
    timm_source.py  timm:<model>@<file>, dinov2:<arch>@<file> (dgm-eval)
    openclip.py     open_clip:<folder>
    tf.py           tf:<torch-fidelity extractor>@<file>
    xrv.py          torchxrayvision:<weights>@<file>
"""
