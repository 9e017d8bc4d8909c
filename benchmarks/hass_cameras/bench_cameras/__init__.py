"""Cameras for the benchmark's real Home Assistant: a rendered scene served by the clock, as in the benchmark."""
