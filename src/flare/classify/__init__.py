"""Classifiers that prove a training set: timm backbones, presets, training, saved models, prediction."""

from flare.classify import backbones, presets  # noqa: F401 - they register the backbones and presets
