"""Stage 3, diffusion synthesis: class-prompted text-to-image and image variations, train split only.

Backends (``flare backends``): ``embedded`` (default; a small pixel-space UNet trained here), ``sd`` (a local
Stable Diffusion-family checkpoint) and ``unidiffuser`` (a local UniDiffuser pipeline). Importing the package
registers them; each backend module imports diffusers only when its backend is built.
"""

from flare.generate import embedded, stable_diffusion, unidiffuser  # noqa: F401 - they register the backends
