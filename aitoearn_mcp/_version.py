"""The package version, in one place: hatch reads it when building, modules import it from here."""

__version__ = "0.2.0"
