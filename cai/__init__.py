"""cai: Constitutional AI and RL from AI feedback, built on transformers and trl."""

__version__ = "0.1.0"
