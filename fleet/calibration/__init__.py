"""Calibration of the simulator's step-time cost model: measuring script, fit, Vidur cross-check, results."""
