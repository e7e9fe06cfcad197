"""Validation of a fitted potential: held-out metrics, equation of state, elastic tensor,
phonons, and the HTML report."""
