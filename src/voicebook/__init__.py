"""voicebook: the booking backend behind AI phone receptionists."""

__version__ = "0.1.0"
