"""TakeBack: find, prove and take down doctored copies of a person's photos."""

__version__ = "0.1.0"

__all__ = ["__version__"]
