"""The physics is device-neutral: the same functions the CPU kernels inline compile as
numba.cuda device code (to PTX, which needs NVVM but no GPU). Skipped where numba's CUDA
compiler is not installed (pip install 'eventsnn[cuda]')."""

from __future__ import annotations

import pytest


def _compile_ptx_or_skip(fn, sig):
    try:
        from numba import cuda
    except Exception as exc:  # pragma: no cover - numba without its CUDA target
        pytest.skip(f"numba.cuda not importable: {exc}")
    try:
        return cuda.compile_ptx(fn, sig, cc=(8, 0))
    except Exception as exc:
        if "nvvm" in str(exc).lower() or "cuda" in type(exc).__name__.lower():
            pytest.skip(f"no CUDA compiler here: {type(exc).__name__}: {exc}")
        raise


def test_neuron_physics_compiles_for_cuda():
    from numba import cuda, float32, int64
    from eventsnn.engine import physics

    def update(v, thr, inp, const, decay, out):
        i = cuda.grid(1)
        if i < v.shape[0]:
            f = physics.leak_factor(decay, 1.0, 3.0, 1.0, False)
            vv = physics.membrane(v[i], f, inp[i], const[i], True, True)
            if physics.crossed(vv, thr[i]):
                n = physics.spikes_emitted(vv, thr[i], 4)
                vv = physics.after_reset(vv, thr[i], n, True, 4)
                out[i] = n
            v[i] = vv

    ptx, _ = _compile_ptx_or_skip(update, (float32[:], float32[:], float32[:], float32[:], float32[:], int64[:]))
    assert "NVVM Compiler" in ptx and "ret;" in ptx and "f32" in ptx


def test_geometry_decode_compiles_for_cuda():
    from numba import cuda, int32, int64
    from eventsnn.engine import physics

    def fan(conn_i, geo, fgeo, out):
        i = cuda.grid(1)
        if i < out.shape[0]:
            out[i] = physics.fanout_count(conn_i, geo, 0, i)
            ny, y0, ky0, nx, x0, kx0 = physics.fanin_entry(conn_i, fgeo, 0, i)
            out[i] += ny * nx + physics.conv_weight_index(conn_i[0, 15], 3, 3, 8, 0, ky0, kx0)

    ptx, _ = _compile_ptx_or_skip(fan, (int64[:, :], int32[:], int32[:], int64[:]))
    assert "NVVM Compiler" in ptx and "ret;" in ptx
