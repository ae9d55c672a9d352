"""Coffea processors of hepae-coffea, installed as ``hepae_coffea.processors``."""
