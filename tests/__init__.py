"""Tests of the Miloco integration."""
