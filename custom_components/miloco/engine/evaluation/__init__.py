"""Evaluation toolkit: run a labelled clip set through a backend exactly as a camera check would, and score it."""
