"""Regimen: a distributed batch job runner for Keras experiments on Ray."""
