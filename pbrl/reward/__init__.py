"""Reward learning from preferences: preference losses (the ensemble model and trainer come next)."""
