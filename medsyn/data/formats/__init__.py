"""Image file formats decoded to uint8: PNG/JPEG/TIFF/... (``imageio``), DICOM (``dicom``) and
the one intensity rule a whole set of files is converted with (``intensity``).

Only a docstring here: the modules import nothing from the rest of ``medsyn.data`` but
``transforms``, and the dataset sources above them (``folder``, ``registry``) import them.
"""
