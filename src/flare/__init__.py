"""FLARE: turn a small, noisy, low-resolution astronomical image set into a better training set, and prove it.

The package is organised as one folder per pipeline stage (``upscale``, ``augment``, ``generate``, ``combine``,
``classify``, ``evaluate``) over a shared ``core`` (manifest, config, image I/O, taxonomy, registry). Stages meet
only in the manifest, which carries every image's provenance.
"""

from flare.core.errors import FlareError

__version__ = "0.1.0"
__all__ = ["FlareError", "__version__"]
