"""Molecular dynamics and the LAMMPS runtime."""
