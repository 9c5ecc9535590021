"""reconet: coherent real-time video style transfer (Gao et al., ACCV 2018).

Image convention everywhere inside the package: RGB, float32, values in [0, 1],
tensors shaped (B, 3, H, W) or (3, H, W). Conversions from/to files happen only in
:mod:`reconet.image` (and the video I/O built on it).
"""

__version__ = "0.1.0"


def load_stylizer(model, **options):
    """A ready-to-use stylizer from a bundled style name or a model file.

        stylizer = reconet.load_stylizer("candy")          # see reconet.list_styles()
        stylizer = reconet.load_stylizer("runs/x/stylizer.pt", device="cuda")
        frames = stylizer(batch)                            # (B, 3, H, W) in [0, 1] -> same

    ``options`` go to :func:`reconet.inference.stylizer.load` (device, backend, precision, and for a
    multi-style model ``style="udnie"`` or a blend ``"udnie:0.6,wave:0.4"`` and ``strength=0..1``).
    (The lower-level :func:`reconet.models.load_stylizer` returns the bare network and its meta.)
    """
    from reconet.inference.stylizer import load
    from reconet.models.pretrained import resolve_model

    return load(resolve_model(model), **options)


def list_styles():
    """The pretrained styles bundled with the package (:class:`reconet.models.pretrained.PretrainedStyle`)."""
    from reconet.models.pretrained import list_styles as bundled

    return bundled()
