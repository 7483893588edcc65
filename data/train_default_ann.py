"""Train the source ANN of eventsnn's default network and export it to ONNX.

This is a development tool, not part of the ``eventsnn`` package: it needs
PyTorch, which eventsnn itself does not depend on. Exact command (from the
repository root)::

    python -m venv /tmp/tvenv
    /tmp/tvenv/bin/pip install torch==2.13.0 onnx numpy onnxruntime
    /tmp/tvenv/bin/python data/train_default_ann.py

(onnxruntime is optional: without it the ONNX-vs-torch output check is
skipped and recorded as such in the metadata.)

Input: the Fashion-MNIST IDX files (``train-images-idx3-ubyte.gz``,
``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
``t10k-labels-idx1-ubyte.gz``) in ``/usr/share/datasets/fashion-mnist``
(Debian/Ubuntu package ``dataset-fashion-mnist``), or the directory given with
``--data-dir``. They are parsed with numpy + gzip; pixels are scaled to [0, 1]
with no mean/std normalisation, because the spiking network receives the raw
[0, 1] pixels as analog input.

Network (only ops that ``eventsnn convert`` accepts; no MaxPool, symmetric
padding)::

    conv3x3(1->16, pad 1) + BN + ReLU -> AvgPool2
    conv3x3(16->32, pad 1) + BN + ReLU -> AvgPool2
    Flatten -> Linear(1568->128) + ReLU -> Dropout(0.2) -> Linear(128->10)

Outputs (next to this script):

- ``default_ann.onnx``: opset 17, input ``input`` of shape (N, 1, 28, 28) with a
  dynamic batch axis N, output ``logits`` (N, 10). Exported in eval mode with
  the TorchScript exporter, so Dropout disappears (and the exporter folds each
  BatchNormalization into the preceding Conv).
- ``default_ann.json``: metadata (test accuracy on the full 10k test set,
  epochs, seed, versions, training time, sha256 of the ONNX file, ...).

Training is seeded and deterministic on CPU (``torch.manual_seed``,
``torch.use_deterministic_algorithms(True)``, ``torch.set_num_threads(2)``).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"
ARCHITECTURE = (
    "input(1x28x28, pixels in [0,1]) -> conv3x3(1->16, stride 1, pad 1) + BN + ReLU -> AvgPool2 "
    "-> conv3x3(16->32, stride 1, pad 1) + BN + ReLU -> AvgPool2 -> Flatten(32*7*7=1568) "
    "-> Linear(1568->128) + ReLU -> Dropout(0.2) -> Linear(128->10) (logits)"
)
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


# --------------------------------------------------------------------------- data

def read_idx(path: str) -> np.ndarray:
    """Read a gzip-compressed IDX file (unsigned-byte data only)."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file")
    if raw[2] != 0x08:
        raise ValueError(f"{path}: IDX type 0x{raw[2]:02x} is not unsigned byte")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    count = int(np.prod(dims))
    if len(raw) != offset + count:
        raise ValueError(f"{path}: expected {offset + count} bytes, found {len(raw)}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_fashion_mnist(data_dir: str):
    arrays = {k: read_idx(os.path.join(data_dir, v)) for k, v in FILES.items()}
    for split, n in (("train", 60000), ("test", 10000)):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if x.shape != (n, 28, 28) or y.shape != (n,) or y.max() > 9:
            raise ValueError(f"unexpected {split} data: images {x.shape}, labels {y.shape}")

    def to_tensors(x, y):
        xt = torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)  # (N, 1, 28, 28) in [0, 1]
        yt = torch.from_numpy(y.astype(np.int64))
        return xt, yt

    digests = {v: sha256_file(os.path.join(data_dir, v)) for v in FILES.values()}
    return (to_tensors(arrays["train_images"], arrays["train_labels"]),
            to_tensors(arrays["test_images"], arrays["test_labels"]),
            digests)


# --------------------------------------------------------------------------- model

class DefaultANN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, stride=1, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.Conv2d(16, 32, kernel_size=3, stride=1, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.AvgPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, 128),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(128, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000):
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(x), batch):
        out = model(x[i:i + batch])
        loss += F.cross_entropy(out, y[i:i + batch], reduction="sum").item()
        correct += (out.argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x), loss / len(x)


# --------------------------------------------------------------------------- main

# --------------------------------------------------------------------------- export

def export_onnx(model: nn.Module, onnx_path: str, x_test: torch.Tensor, allowed_ops: set):
    """Export ``model`` (eval mode: Dropout disappears, the TorchScript exporter folds each
    BatchNormalization into its Conv) as opset 17 with a dynamic batch axis; check the
    graph, that it uses only ``allowed_ops`` (what ``eventsnn convert`` accepts) and
    symmetric pads; then, if onnxruntime is installed, that it gives torch's outputs on
    100 test images. Returns (sorted op types, the onnxruntime check as a dict)."""
    import onnx

    torch.onnx.export(
        model, (torch.zeros(1, 1, 28, 28),), onnx_path,
        dynamo=False, export_params=True, opset_version=17, do_constant_folding=True,
        training=torch.onnx.TrainingMode.EVAL, input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    m = onnx.load(onnx_path)
    onnx.checker.check_model(m, full_check=True)
    op_types = sorted({n.op_type for n in m.graph.node})
    if not set(op_types) <= allowed_ops:
        raise SystemExit(f"ONNX graph uses ops outside the convertible set: {sorted(set(op_types) - allowed_ops)}")
    for n in m.graph.node:
        for a in n.attribute:
            if a.name == "pads":
                p = list(a.ints)
                if p[: len(p) // 2] != p[len(p) // 2:]:
                    raise SystemExit(f"{n.name}: asymmetric pads {p}")
    print(f"ONNX ops: {op_types}", flush=True)

    try:
        import onnxruntime as ort
    except ImportError:
        return op_types, {"status": "skipped (onnxruntime not installed)"}
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    xs = x_test[:100]
    got = sess.run(None, {"input": xs.numpy()})[0]
    with torch.no_grad():
        ref = model(xs).numpy()
    same_argmax = bool((got.argmax(1) == ref.argmax(1)).all())
    ok = bool(np.allclose(got, ref, rtol=1e-4, atol=1e-4)) and same_argmax
    check = {"status": "passed" if ok else "FAILED", "images": 100,
             "max_abs_diff": float(np.abs(got - ref).max()), "same_argmax": same_argmax,
             "onnxruntime_version": ort.__version__}
    print(f"onnxruntime check: {check}", flush=True)
    if not ok:
        raise SystemExit("onnxruntime outputs differ from torch outputs")
    return op_types, check


def onnx_metadata(onnx_path: str, op_types: list) -> dict:
    """The metadata fields that describe the exported file and its interface."""
    return {
        "file": os.path.basename(onnx_path),
        "onnx_sha256": sha256_file(onnx_path),
        "onnx_bytes": os.path.getsize(onnx_path),
        "onnx_opset": 17,
        "onnx_ops": op_types,
        "input": {"name": "input", "shape": ["batch", 1, 28, 28], "layout": "NCHW", "dtype": "float32",
                  "range": [0.0, 1.0], "preprocessing": "pixel / 255, no mean/std normalisation"},
        "output": {"name": "logits", "shape": ["batch", 10]},
    }


def write_metadata(meta: dict, meta_path: str, onnx_path: str) -> None:
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(f"wrote {onnx_path} ({meta['onnx_bytes']} bytes, sha256 {meta['onnx_sha256']}) and {meta_path}")


def versions() -> dict:
    import onnx

    return {"torch_version": torch.__version__, "onnx_version": onnx.__version__,
            "numpy_version": np.__version__, "python_version": platform.python_version()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out-dir", default=HERE)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)

    (x_train, y_train), (x_test, y_test), data_digests = load_fashion_mnist(args.data_dir)
    print(f"train {tuple(x_train.shape)}, test {tuple(x_test.shape)}, pixel range "
          f"[{x_train.min().item():.1f}, {x_train.max().item():.1f}]", flush=True)

    model = DefaultANN()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = (len(x_train) + args.batch_size - 1) // args.batch_size
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(args.seed)

    history = []
    t0 = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        te = time.perf_counter()
        model.train()
        perm = torch.randperm(len(x_train), generator=gen)
        run_loss, run_correct = 0.0, 0
        for i in range(0, len(x_train), args.batch_size):
            idx = perm[i:i + args.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            run_loss += loss.item() * len(idx)
            run_correct += (out.argmax(1) == yb).sum().item()
        train_s = time.perf_counter() - te
        test_acc, test_loss = evaluate(model, x_test, y_test)
        rec = {
            "epoch": epoch,
            "train_loss": round(run_loss / len(x_train), 5),
            "train_acc": round(run_correct / len(x_train), 5),
            "test_loss": round(test_loss, 5),
            "test_acc": round(test_acc, 5),
            "epoch_train_s": round(train_s, 2),
        }
        history.append(rec)
        print(json.dumps(rec), flush=True)
    train_time = time.perf_counter() - t0  # includes the per-epoch test evaluations

    model.eval()
    test_acc, test_loss = evaluate(model, x_test, y_test)
    print(f"final test accuracy (10k): {test_acc:.4f}, training time {train_time:.1f} s", flush=True)

    os.makedirs(args.out_dir, exist_ok=True)
    onnx_path = os.path.join(args.out_dir, "default_ann.onnx")
    op_types, ort_check = export_onnx(model, onnx_path, x_test,
                                      {"Conv", "BatchNormalization", "Relu", "AveragePool", "Flatten", "Gemm",
                                       "Dropout"})

    meta = {
        **onnx_metadata(onnx_path, op_types),
        "architecture": ARCHITECTURE,
        "dataset": "Fashion-MNIST (60k train / 10k test)",
        "dataset_files_sha256": data_digests,
        "test_accuracy": test_acc,
        "test_loss": round(test_loss, 5),
        "test_images": len(x_test),
        "epochs": args.epochs,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "optimizer": f"Adam(lr={args.lr}), cosine annealing to 0 over all steps (per batch)",
        "threads": args.threads,
        "training_time_s": round(train_time, 1),
        "history": history,
        "onnxruntime_check": ort_check,
        **versions(),
        "command": "/tmp/tvenv/bin/python data/train_default_ann.py",
    }
    write_metadata(meta, os.path.join(args.out_dir, "default_ann.json"), onnx_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
