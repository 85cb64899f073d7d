"""pbrl: preference-based reinforcement learning for continuous control."""

__version__ = "0.1.0"
