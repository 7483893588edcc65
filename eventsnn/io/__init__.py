"""Reading and writing networks and results."""

from .native import load_network, save_network

__all__ = ["load_network", "save_network"]
