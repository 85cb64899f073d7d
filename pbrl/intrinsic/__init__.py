"""Intrinsic rewards for unsupervised pretraining."""
