"""Inputs: what to simulate. Study files (TOML) and the LiF structure builder."""
