"""Synergy in nsvae: the A_best selection policies and the S_max synergy measures."""
