"""Simulations that produce detector data with known ground truth."""
