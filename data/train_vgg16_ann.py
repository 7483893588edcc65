"""Train the VGG16 of issue 16 on Fashion-MNIST and export it to ONNX.

A development tool, not part of the ``eventsnn`` package (PyTorch is never a
dependency of eventsnn). Exact command (from the repository root)::

    python -m venv /tmp/tvenv
    /tmp/tvenv/bin/pip install torch==2.13.0 onnx numpy onnxruntime
    /tmp/tvenv/bin/python data/train_vgg16_ann.py --width 0.25 --epochs 12

Input: the Fashion-MNIST IDX files in ``/usr/share/datasets/fashion-mnist``
(Debian/Ubuntu package ``dataset-fashion-mnist``) or ``--data-dir``, parsed
with numpy + gzip (the reader of ``train_default_ann.py``). Pixels are scaled
to [0, 1] with no mean/std normalisation: the spiking network receives the raw
[0, 1] pixels as analog input.

Network: VGG16 (13 conv 3x3 + BN + ReLU in the five VGG blocks, 3 dense),
every channel count multiplied by ``--width`` (1.0 is the original
64,64,P,128,128,P,256x3,P,512x3,P,512x3,P), average pooling (2x2, stride 2)
in place of max pooling, as the conversion literature does::

    input 1x28x28
    conv(1->c1, pad 2) -> 30x30, conv(c1->c1, pad 2) -> 32x32, AvgPool2 -> 16x16
    conv(c1->c2) x2 -> AvgPool2 -> 8x8            (pad 1 from here on)
    conv(c2->c3) x3 -> AvgPool2 -> 4x4
    conv(c3->c4) x3 -> AvgPool2 -> 2x2
    conv(c4->c4) x3 -> AvgPool2 -> 1x1
    Flatten(c4) -> Linear(c4->c4) + ReLU -> Dropout
                -> Linear(c4->c4) + ReLU -> Dropout -> Linear(c4->10)

with (c1, c2, c3, c4) = width * (64, 128, 256, 512). The 28x28 images reach
the 32x32 resolution of the VGG layout by the padding 2 of the first two convs
(one extra pixel each), so the network reads the plain 28x28 images — the
shipped sample and any Fashion-MNIST file — with no preprocessing.

Training: SGD (momentum 0.9, Nesterov, weight decay 5e-4 on conv/linear
weights), one-cycle learning rate (max ``--lr``), batch 128, light
augmentation (random shift of up to 2 pixels, zero fill — a random crop of
the 2-padded image — and horizontal flip). Seeded and deterministic on CPU
(``torch.manual_seed``, ``torch.use_deterministic_algorithms(True)``,
``torch.set_num_threads``). A checkpoint is written after every epoch
(``--checkpoint``); ``--resume`` continues from it.

Outputs (``--out-dir``, default next to this script):

- ``vgg16_fashion.onnx``: opset 17, input ``input`` (N, 1, 28, 28), output
  ``logits`` (N, 10), exported in eval mode with the TorchScript exporter,
  so Dropout disappears and each BatchNormalization is folded into its Conv.
- ``vgg16_fashion.json``: metadata (width, test accuracy on the full 10k test
  set, epochs, seed, versions, training time, history, sha256 of the ONNX file
  and of the input files).

``--time-batches N`` only times N training batches at the given width and
exits (used to pick the width).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from train_default_ann import (DEFAULT_DATA_DIR, evaluate, export_onnx, load_fashion_mnist,  # noqa: E402
                               onnx_metadata, sha256_file, versions, write_metadata)

BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def channels(width: float) -> list:
    """The 13 conv widths, each ``max(1, round(width * c))``."""
    return [[max(1, int(round(width * c))) for c in block] for block in BLOCKS]


class VGG16(nn.Module):
    def __init__(self, width: float, dropout: float = 0.3, classes: int = 10) -> None:
        super().__init__()
        layers, cin, n = [], 1, 0
        for block in channels(width):
            for c in block:
                pad = 2 if n < 2 else 1  # 28x28 -> 30 -> 32, then 'same'
                layers += [nn.Conv2d(cin, c, 3, padding=pad), nn.BatchNorm2d(c), nn.ReLU()]
                cin, n = c, n + 1
            layers.append(nn.AvgPool2d(2))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(cin, cin), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(cin, cin), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(cin, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def architecture(width: float, dropout: float) -> str:
    ch = channels(width)
    c4 = ch[-1][-1]
    return (f"VGG16 width {width:g}: input(1x28x28, pixels in [0,1]) -> "
            f"conv3x3(1->{ch[0][0]}, pad 2)+BN+ReLU (30x30) -> conv3x3({ch[0][0]}->{ch[0][1]}, pad 2)+BN+ReLU "
            f"(32x32) -> AvgPool2 -> "
            + " -> ".join(" -> ".join(f"conv3x3(->{c}, pad 1)+BN+ReLU" for c in block) + " -> AvgPool2"
                          for block in ch[1:])
            + f" (1x1) -> Flatten({c4}) -> Linear({c4}->{c4})+ReLU -> Dropout({dropout:g}) "
              f"-> Linear({c4}->{c4})+ReLU -> Dropout({dropout:g}) -> Linear({c4}->10) (logits)")


def augment(x: torch.Tensor, gen: torch.Generator, shift: int = 2) -> torch.Tensor:
    """Random crop of the ``shift``-padded image (zero fill) and random horizontal flip."""
    n, _, h, w = x.shape
    xp = F.pad(x, (shift, shift, shift, shift))
    oy = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
    ox = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
    rows = (oy[:, None] + torch.arange(h))[:, :, None]  # (n, h, 1)
    cols = (ox[:, None] + torch.arange(w))[:, None, :]  # (n, 1, w)
    out = xp[torch.arange(n)[:, None, None], 0, rows, cols].unsqueeze(1)
    flip = torch.rand(n, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def make_optimizer(model, lr, epochs, steps_per_epoch, wd):
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=lr, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch,
                                                pct_start=0.2)
    return opt, sched


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--dropout", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out-dir", default=HERE)
    ap.add_argument("--checkpoint", default="/tmp/vgg16_fashion.ckpt")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--time-batches", type=int, default=0)
    ap.add_argument("--init", default=None,
                    help="start from these weights (the *.final.pt of an earlier run; a second training "
                         "stage with its own one-cycle schedule); recorded in the metadata")
    ap.add_argument("--init-meta", default=None, help="the earlier run's metadata JSON, kept in this one's")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)

    (x_train, y_train), (x_test, y_test), data_digests = load_fashion_mnist(args.data_dir)
    model = VGG16(args.width, args.dropout)
    init_info = None
    if args.init:
        model.load_state_dict(torch.load(args.init, weights_only=True))
        init_info = {"weights": os.path.basename(args.init), "sha256": sha256_file(args.init)}
        if args.init_meta:
            with open(args.init_meta) as f:
                prev = json.load(f)
            init_info["earlier_run"] = {k: prev[k] for k in ("epochs", "seed", "optimizer", "test_accuracy",
                                                             "training_time_s", "history", "command") if k in prev}
        print(f"initialised from {args.init}", flush=True)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"width {args.width:g}: {n_params} parameters; {architecture(args.width, args.dropout)}", flush=True)
    steps_per_epoch = (len(x_train) + args.batch_size - 1) // args.batch_size
    opt, sched = make_optimizer(model, args.lr, args.epochs, steps_per_epoch, args.weight_decay)
    gen = torch.Generator().manual_seed(args.seed)

    if args.time_batches:
        model.train()
        t0 = time.perf_counter()
        for i in range(args.time_batches):
            idx = torch.randint(0, len(x_train), (args.batch_size,), generator=gen)
            loss = F.cross_entropy(model(augment(x_train[idx], gen)), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        dt = time.perf_counter() - t0
        print(f"width {args.width:g}: {dt / args.time_batches:.3f} s/batch, "
              f"{dt / args.time_batches * steps_per_epoch:.0f} s/epoch", flush=True)
        return 0

    history, start, train_time = [], 1, 0.0
    if args.resume and os.path.exists(args.checkpoint):
        ck = torch.load(args.checkpoint, weights_only=True)  # no pickled code
        if ck["args"]["width"] != args.width or ck["args"]["epochs"] != args.epochs:
            raise SystemExit("checkpoint was made with another --width/--epochs")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        gen.set_state(ck["gen"])
        torch.set_rng_state(ck["rng"])
        history, start, train_time = ck["history"], ck["epoch"] + 1, ck["train_time"]
        print(f"resumed after epoch {ck['epoch']}", flush=True)

    for epoch in range(start, args.epochs + 1):
        te = time.perf_counter()
        model.train()
        perm = torch.randperm(len(x_train), generator=gen)
        run_loss, run_correct = 0.0, 0
        for i in range(0, len(x_train), args.batch_size):
            idx = perm[i:i + args.batch_size]
            xb, yb = augment(x_train[idx], gen), y_train[idx]
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            run_loss += loss.item() * len(idx)
            run_correct += (out.argmax(1) == yb).sum().item()
            if (i // args.batch_size) % 50 == 49:
                print(f"  epoch {epoch} batch {i // args.batch_size + 1}/{steps_per_epoch} "
                      f"loss {run_loss / (i + len(idx)):.4f} {time.perf_counter() - te:.0f} s", flush=True)
        train_s = time.perf_counter() - te
        test_acc, test_loss = evaluate(model, x_test, y_test)
        train_time += time.perf_counter() - te
        rec = {"epoch": epoch, "train_loss": round(run_loss / len(x_train), 5),
               "train_acc": round(run_correct / len(x_train), 5), "test_loss": round(test_loss, 5),
               "test_acc": round(test_acc, 5), "epoch_train_s": round(train_s, 2)}
        history.append(rec)
        print(json.dumps(rec), flush=True)
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "gen": gen.get_state(), "rng": torch.get_rng_state(), "history": history,
                    "epoch": epoch, "train_time": train_time, "args": vars(args)},
                   args.checkpoint + ".tmp")
        os.replace(args.checkpoint + ".tmp", args.checkpoint)

    model.eval()
    test_acc, test_loss = evaluate(model, x_test, y_test)
    print(f"final test accuracy (10k): {test_acc:.4f}, training time {train_time:.1f} s", flush=True)
    torch.save(model.state_dict(), args.checkpoint + ".final.pt")  # the torch weights, for the peers; not shipped

    onnx_path = os.path.join(args.out_dir, "vgg16_fashion.onnx")
    op_types, ort_check = export_onnx(model, onnx_path, x_test, {"Conv", "Relu", "AveragePool", "Flatten", "Gemm"})

    meta = {
        **onnx_metadata(onnx_path, op_types),
        "width": args.width,
        "channels": channels(args.width),
        "parameters": n_params,
        "architecture": architecture(args.width, args.dropout),
        "dataset": "Fashion-MNIST (60k train / 10k test)",
        "dataset_files_sha256": data_digests,
        "augmentation": "random shift up to 2 px (crop of the zero-padded image) + horizontal flip",
        "test_accuracy": test_acc,
        "test_loss": round(test_loss, 5),
        "test_images": len(x_test),
        "epochs": args.epochs,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "optimizer": (f"SGD(momentum 0.9, nesterov, weight decay {args.weight_decay:g} on weights), "
                      f"OneCycleLR(max_lr={args.lr:g}, pct_start 0.2), per batch"),
        "dropout": args.dropout,
        "threads": args.threads,
        "training_time_s": round(train_time, 1),
        "history": history,
        "init": init_info,
        "onnxruntime_check": ort_check,
        **versions(),
        "command": "python data/train_vgg16_ann.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    write_metadata(meta, os.path.join(args.out_dir, "vgg16_fashion.json"), onnx_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
