"""Helpers shared by tests (fixture audio, producers, running workers)."""
