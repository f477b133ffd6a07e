"""Classifiers that prove a training set: timm backbones, presets, training, saved models, prediction."""
