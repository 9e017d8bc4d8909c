"""Cameras for the end-to-end test: frames from a folder the test writes, served as slowly as a real camera."""
