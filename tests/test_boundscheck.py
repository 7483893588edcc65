"""The CI safety net is real: kernels built with the engine's flags honour NUMBA_BOUNDSCHECK,
so the bounds-checked rerun of the engine tests (.ci/run) would catch a write one slot too far."""

import os
import subprocess
import sys
import textwrap


def _run(env_value, tmp_path):
    code = textwrap.dedent("""
        import numpy as np
        from eventsnn.engine.jit import kernel

        @kernel
        def write_past_end(a, i):
            a[i] = 1.0
            return a.shape[0]

        try:
            write_past_end(np.zeros(4, np.float32), 4)
            print("no error")
        except IndexError:
            print("IndexError")
    """)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / env_value)}
    env.pop("NUMBA_BOUNDSCHECK", None)
    if env_value == "on":
        env["NUMBA_BOUNDSCHECK"] = "1"
    script = tmp_path / f"oob_{env_value}.py"  # a file: cached kernels need a source file
    script.write_text(code)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_boundscheck_follows_the_environment(tmp_path):
    assert _run("on", tmp_path) == "IndexError"
    assert _run("off", tmp_path) == "no error"
