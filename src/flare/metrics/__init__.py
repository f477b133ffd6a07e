"""Measures, on core only: classification metrics and scoring, features, synthetic-image quality,
memorisation (near-copies of train images), SR fidelity.

A leaf package: every stage may call it, it calls no stage (tests/test_architecture.py).
"""
