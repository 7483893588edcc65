"""Column indices of the integer tables the kernels read, and status codes.

The compiled network's structure is a handful of flat arrays (see :mod:`.model`
and :mod:`.compile`); these constants name their columns so kernels and Python
agree on one layout.
"""

# Connection kinds (how one source spike fans out).
K_CONV = 0
K_DENSE = 1
K_POOL = 2  # average pooling: a scalar weight 1/(kh*kw)
K_IDENT = 3  # residual branch: a scalar weight (1.0)
K_GATE = 4  # max-pool gate (running spike counts)

# conn_i columns.
C_KIND, C_SRC, C_DST = 0, 1, 2
C_HI, C_WI, C_CI = 3, 4, 5
C_HO, C_WO, C_CO = 6, 7, 8
C_KH, C_KW, C_SY, C_SX, C_PY, C_PX = 9, 10, 11, 12, 13, 14
C_WOFF = 15
C_GEO = 16  # offset of the connection's geometry table (see .geometry)
C_CSHIFT = 17  # log2(C_in) if a power of two, else -1
C_FGEO = 18  # offset of the connection's fan-in geometry table (see .geometry)
C_BOFF = 19  # offset of the connection's bias segment in Params.bias, -1: no bias
C_NFIELDS = 20

# Population kinds.
P_INPUT = 0
P_INTEGRATE = 1
P_GATE = 2

# pop_i columns.
P_KIND, P_N, P_OFF, P_H, P_W, P_C = 0, 1, 2, 3, 4, 5
P_BLOCK, P_UOFF, P_NUNITS, P_RESET, P_CONST = 6, 7, 8, 9, 10
P_OC_START, P_OC_N, P_GOFF, P_SPIKING, P_LEAKY, P_IN_CONN = 11, 12, 13, 14, 15, 16
P_MAX_SPIKES = 17  # most spikes per neuron per step (1: binary)
P_NFIELDS = 18

RESET_SUBTRACT = 0
RESET_ZERO = 1

# Scalar slots of the queue's int64 array `qs`.
Q_HEAP_N, Q_EV_FREE, Q_B_FREE, Q_SEQ, Q_CUR, Q_IN_CURSOR = 0, 1, 2, 3, 4, 5
Q_RUN_N = 6  # entries used in the queue's spike-run buffer
Q_RUN_NEED = 7  # run-buffer entries the next update needs (set with ST_GROW_RUNS)
Q_NFIELDS = 8

# Status codes returned by the advance kernel.
ST_EMPTY = 0  # queue empty: the sample is finished
ST_UNTIL = 1  # the next event lies at or past the requested time
ST_PAUSED = 2  # the requested number of events was processed
ST_GROW_QUEUE = 3  # not enough free event or bucket slots for the next flush
ST_GROW_LOG = 4  # the spike log or the membrane trace is full
ST_BREAK = 5  # a spike breakpoint was hit (the layer update that caused it is complete)
ST_GROW_RUNS = 6  # not enough room in the queue's spike-run buffer for the next flush

NO_CONN = -1  # a sentinel event: it only schedules its layer's update
RUN_END = -1  # ends a run of spikes in the queue's run buffer


def aligned_zeros(n: int, dtype, align: int = 64):
    """A zeroed 1-d array whose data starts on an ``align``-byte boundary.

    The vector loops load 64 bytes at a time (AVX-512); numpy only promises
    16-byte alignment, and a split cache line on every load made the same
    run up to 15 % slower from one process to the next.
    """
    import numpy as np

    dtype = np.dtype(dtype)
    raw = np.zeros(int(n) * dtype.itemsize + align, np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start: start + int(n) * dtype.itemsize].view(dtype)
