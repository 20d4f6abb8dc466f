"""fdsiamfc: SiamFC tracking, Feature-Distilling compression and benchmarking."""

__version__ = "0.1.0"
