"""reconet: coherent real-time video style transfer (Gao et al., ACCV 2018).

Image convention everywhere inside the package: RGB, float32, values in [0, 1],
tensors shaped (B, 3, H, W) or (3, H, W). Conversions from/to files happen only in
:mod:`reconet.image` (and the video I/O built on it).
"""

__version__ = "0.1.0"
