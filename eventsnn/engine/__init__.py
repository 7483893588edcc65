"""The event engine: queue, connectivity, numba kernels and the Simulator."""
