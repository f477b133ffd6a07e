"""Measures, on core only: classification metrics and scoring, features, synthetic-image quality, SR fidelity.

A leaf package: every stage may call it, it calls no stage (tests/test_architecture.py).
"""
