"""Exceptions raised by the library; the CLI prints them as one line and exits with code 1."""

from __future__ import annotations

__all__ = ["FlareError", "ConfigError", "ImageReadError", "ManifestError", "UnknownBackendError", "LeakageError"]


class FlareError(Exception):
    """Base class: the message is one line that names the field or file and what is allowed."""


class ConfigError(FlareError):
    """A configuration value is missing or not allowed."""


class ImageReadError(FlareError):
    """An image or FITS file cannot be read; the message is the quarantine reason."""


class ManifestError(FlareError):
    """A manifest is missing, malformed or inconsistent."""


class UnknownBackendError(FlareError):
    """A backend name is not registered for a stage."""


class LeakageError(FlareError):
    """An origin image (or an exact duplicate) appears in more than one split."""
