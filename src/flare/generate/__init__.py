"""Stage 3, diffusion synthesis: class-prompted text-to-image and image variations, train split only.

Backends (``flare backends``): ``embedded`` (default; a small pixel-space UNet trained here), ``sd`` (a local
Stable Diffusion-family checkpoint) and ``unidiffuser`` (a local UniDiffuser pipeline).
"""
