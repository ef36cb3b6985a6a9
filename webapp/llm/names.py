"""Names the model layer and the catalogue share, in a module that imports nothing heavy."""

__all__ = ["OFFLINE_MODEL_NAME"]

OFFLINE_MODEL_NAME = "offline"
"""Model name reported for replies of the offline model, and its name in the catalogue."""
