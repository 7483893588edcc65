"""Membrane update of one block of neurons: the vectorisable part of a layer flush.

A flush updates every touched unit (one position of a conv layer: its C_out
neurons side by side, or a single neuron) with the clock-driven rule::

    V <- V * leak**dt + I_events + I_const

and clears the event input. Written as straight loops over slice views with the
population's flags decided outside them, LLVM turns each into SIMD code; the
loop also counts how many neurons reached threshold so that the spike pass
(which emits events and so cannot be vectorised) runs only when one did.
The order of operations is the reference's, so results are bit-identical.
"""

from __future__ import annotations

import numpy as np

from .jit import inline_kernel


@inline_kernel
def integrate_block(v, inp, const, thr, f, leaky, has_const):
    """Update ``v`` in place from ``inp`` (then zeroed) and ``const``; return how
    many entries now satisfy ``v >= thr``. All arguments are equal-length views."""
    zero = np.float32(0.0)
    n = v.shape[0]
    crossed = 0
    if leaky and has_const:
        for j in range(n):
            vv = v[j] * f + inp[j] + const[j]
            inp[j] = zero
            v[j] = vv
            crossed += vv >= thr[j]
    elif leaky:
        for j in range(n):
            vv = v[j] * f + inp[j]
            inp[j] = zero
            v[j] = vv
            crossed += vv >= thr[j]
    elif has_const:
        for j in range(n):
            vv = v[j] + inp[j] + const[j]
            inp[j] = zero
            v[j] = vv
            crossed += vv >= thr[j]
    else:
        for j in range(n):
            vv = v[j] + inp[j]
            inp[j] = zero
            v[j] = vv
            crossed += vv >= thr[j]
    return crossed


@inline_kernel
def mark_crossed(v, thr, mask):
    """mask[j] = v[j] >= thr[j] (vectorised); the spike pass then skips zero 8-byte words."""
    for j in range(v.shape[0]):
        mask[j] = v[j] >= thr[j]


@inline_kernel
def largest_drive(inp, const, has_const, top):
    """max(top, max(inp + const)): the largest input a neuron of the block receives
    (spike-norm's threshold balancing reads it)."""
    n = inp.shape[0]
    if has_const:
        for j in range(n):
            d = inp[j] + const[j]
            if d > top:
                top = d
    else:
        for j in range(n):
            if inp[j] > top:
                top = inp[j]
    return top
