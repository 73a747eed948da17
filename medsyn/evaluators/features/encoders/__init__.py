"""Encoders users bring, as feature spaces named ``source:target`` (registered in
``features/__init__.py``): their weights are a local file or folder, else what the library's
own download fetches (not offline), read without running code either way; their preprocessing
is the one of the code whose numbers they are meant to match.

    files.py        local files and folders, the libraries' downloads, safe reading, sha256
    preprocess.py   PIL resize / crop / normalisation pipelines, transformers' processor config
    extractor.py    EncoderExtractor: pipeline + the library's forward
    hf.py           hf:<folder|repo id>, rad-dino:<...> (CheXGenBench), cmmd-clip:<...> (CMMD)
    timm_source.py  timm:<model>[@<file>], dinov2:<arch>[@<file>] (dgm-eval)
    openclip.py     open_clip:<folder>, open_clip:<model>@<pretrained tag>
    tf.py           tf:<torch-fidelity extractor>[@<file>]
    xrv.py          torchxrayvision:<weights>[@<file>] (DenseNet-121s, ResNet-50 at 512 px)
"""
