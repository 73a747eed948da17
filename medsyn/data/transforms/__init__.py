"""Transforms of uint8 images: the antialiased bicubic resize of datasets (``resize``),
MATLAB's ``imresize`` for SR data and SR metrics (``matlab_resize``) and Canny edge maps
(``edges``).

Only a docstring here: these modules import only the shared base (``medsyn.errors``), and
everything above them imports them by their full path.
"""
