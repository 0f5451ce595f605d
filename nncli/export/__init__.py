"""Export a trained model for use outside nncli.

``onnx.py`` writes the whole pipeline (CSV columns in, what ``nncli predict`` prints out) as an
ONNX graph; ``c.py`` writes one dependency-free C99 header. ``common.py`` holds what both read
from a model: the dense layers, the output transform and the input columns they can encode.
"""
from nncli.export.common import export_model  # noqa: F401  (the package's API)
