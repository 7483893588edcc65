"""``eventsnn`` command line: a thin layer over the library.

Every user error (a bad network file, a bad data set, a shape mismatch, a bad
option) ends as one ``Error: ...`` line on stderr and a non-zero exit status;
results go to stdout, the progress bar to stderr.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from importlib import resources

import click
import numpy as np

from eventsnn.cli.errors import OneLineGroup

DEFAULT_NET = "default_net.h5"
DEFAULT_DATA = "fashion-mnist-sample.npz"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


@contextlib.contextmanager
def _user_errors():
    """Turn library errors (ValueError incl. NetworkError, OSError) into one-line click errors."""
    try:
        yield
    except click.ClickException:
        raise
    except (ValueError, OSError) as exc:
        raise click.ClickException(_one_line(exc)) from None


def _shipped(stack: contextlib.ExitStack, name: str, what: str, option: str) -> str:
    """A file shipped in the ``eventsnn.data`` package, as a real path."""
    resource = resources.files("eventsnn.data") / name
    if not resource.is_file():
        if name == DEFAULT_NET:
            raise click.ClickException(
                f"no default network is shipped yet (eventsnn.data/{name} is missing); "
                f"pass {option} NET.h5")
        raise click.ClickException(f"the shipped {what} eventsnn.data/{name} is missing; pass {option}")
    return os.fspath(stack.enter_context(resources.as_file(resource)))


def _match_input(x: np.ndarray, input_shape: tuple, source: str) -> np.ndarray:
    """Check the images (N, H, W, C) against the network input; flatten for a flat input."""
    want = tuple(int(d) for d in input_shape)
    got = tuple(x.shape[1:])
    if len(want) == 1:
        if int(np.prod(got)) == want[0]:
            return x.reshape(x.shape[0], want[0])
    elif got == want:
        return x
    raise click.ClickException(
        f"{source}: images have shape {got} (H, W, C), but the network expects input shape {want}")


def _check_output_dir(output: str | None, force: bool = False) -> None:
    """Refuse an output path before any work starts (see eventsnn.io.atomic.check_output_path)."""
    if output is not None:
        from eventsnn.io.atomic import check_output_path
        with _user_errors():
            check_output_path(output, force)


def _set_max_memory(ctx, param, value):
    if value is not None:
        from eventsnn import limits
        try:
            limits.set_max_memory(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return value


_MAX_MEMORY = click.option("--max-memory", metavar="SIZE", callback=_set_max_memory, is_eager=True,
                           expose_value=False,
                           help="Refuse networks, runs and files needing more memory than this (e.g. 8G). "
                                "[default: half the machine's memory, or EVENTSNN_MAX_MEMORY]")
_FORCE = click.option("--force", is_flag=True,
                      help="Also write to an output path that is a symlink (its target is written), "
                           "a FIFO or a device (written into); otherwise only regular files are replaced.")


def _format_table(rows: list, timesteps: int) -> list:
    headers = ("layer", "neurons", "spikes/sample", "rate/neuron/step", "syn ops/sample",
               "updates/sample", "analog MACs/sample")
    keys = ("neurons", "spikes_per_sample", "spike_rate", "syn_ops_per_sample",
            "neuron_updates_per_sample", "analog_macs_per_sample")
    total = {k: sum(r[k] for r in rows) for k in keys}
    total["spike_rate"] = total["spikes_per_sample"] / max(total["neurons"] * timesteps, 1)

    def cells(name, r):
        return (str(name), f"{int(r['neurons']):,}", f"{r['spikes_per_sample']:,.1f}",
                f"{r['spike_rate']:.5f}", f"{r['syn_ops_per_sample']:,.1f}",
                f"{r['neuron_updates_per_sample']:,.1f}", f"{r['analog_macs_per_sample']:,.1f}")

    body = [cells(r["layer"], r) for r in rows]
    foot = cells("total", total)
    widths = [max(len(row[i]) for row in [headers, foot, *body]) for i in range(len(headers))]

    def line(row):
        return "  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])])

    rule = "  ".join("-" * w for w in widths)
    return [line(headers), rule, *(line(r) for r in body), rule, line(foot)]


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="eventsnn", prog_name="eventsnn")
@click.option("--debug", is_flag=True, help="Show the Python traceback of an unexpected error.")
def main(debug):
    """Event-driven simulator for deep spiking neural networks."""
    from eventsnn import limits
    limits.set_max_memory(None)  # each command starts from the default; its --max-memory applies after


class _PositiveFinite(click.ParamType):
    """A float > 0 and finite (click's FloatRange lets NaN through: every comparison with it is false)."""

    name = "float"

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not (math.isfinite(number) and number > 0):
            self.fail(f"{value!r} is not a positive finite number", param, ctx)
        return number


_POSITIVE_FINITE = _PositiveFinite()

_PARALLEL_OPTIONS = [
    click.option("--workers", type=click.IntRange(min=1), default=None,
                 help="Simulate on N threads (or N Dask worker processes with --dask) [default: every "
                      "core this process may use]. The results equal --workers 1 bit for bit."),
    click.option("--dask", "use_dask", is_flag=True,
                 help="Start a local Dask cluster of --workers processes (pip install 'eventsnn[dask]')."),
    click.option("--scheduler", metavar="tcp://HOST:PORT", default=None,
                 help="Send the shards to this running Dask scheduler (pip install 'eventsnn[dask]'; "
                      "its workers need eventsnn)."),
    click.option("--shard-size", type=click.IntRange(min=1), default=None,
                 help="Samples per shard [default: about four shards per worker, at most 256]."),
]

_RUN_OPTIONS = [
    click.option("--net", "net_path", type=click.Path(exists=True, dir_okay=False),
                 help="Network file (HDF5, eventsnn format). Default: the shipped default network."),
    click.option("--data", "data_path", type=click.Path(exists=True),
                 help="Data set: .npz, IDX (MNIST family) or CIFAR binary file or directory. "
                      "Default: the shipped Fashion-MNIST sample."),
    click.option("--timesteps", type=click.IntRange(min=1), default=100, show_default=True,
                 help="Simulation steps (duration in continuous mode)."),
    click.option("--samples", type=click.IntRange(min=1), default=None,
                 help="Run only the first N samples [default: all]."),
    click.option("--encoding", type=click.Choice(["direct", "poisson"]), default=None,
                 help="Input coding [default: the network's]."),
    click.option("--mode", type=click.Choice(["discrete", "continuous"]), default="discrete",
                 show_default=True,
                 help="Time mode. continuous: float64 spike times and synaptic delays; the input must be "
                      "spikes, so a net with direct (analog) input such as the shipped one needs "
                      "--encoding poisson."),
    click.option("--seed", type=int, default=0, show_default=True, help="Seed of the Poisson encoder."),
    click.option("--poisson-rate", type=_POSITIVE_FINITE, default=1.0,
                 show_default=True, help="Scale of the Poisson spike probability per step."),
    click.option("--order", type=click.Choice(["auto", "time", "layer"]), default="auto", show_default=True,
                 help="Event order: step by step over all layers ('time'), or each layer for all its "
                      "steps ('layer': identical results, faster on deep nets; discrete time only). "
                      "'auto': layer in discrete time, time in continuous time."),
    click.option("--no-progress", is_flag=True, help="Do not show a progress bar."),
    _MAX_MEMORY,
]


def _run_options(fn):
    for option in reversed(_RUN_OPTIONS + _PARALLEL_OPTIONS):
        fn = option(fn)
    return fn


@main.command()
@_run_options
@click.option("--json", "as_json", is_flag=True, help="Print only a JSON summary on stdout.")
@click.option("--output", type=click.Path(dir_okay=False),
              help="Write all counts to this HDF5 results file.")
@click.option("--sweep-timesteps", "sweep", default=None, metavar="T1,T2,...",
              help="Also report accuracy, spikes and synaptic ops after each of these timesteps, "
                   "read off the same simulation (runs max(T) steps).")
@_FORCE
@click.option("--backend", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True,
              help="Where events run: 'cuda' needs an NVIDIA GPU and pip install 'eventsnn[cuda]' "
                   "(discrete time); 'auto': cuda when a GPU is present, else cpu.")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="With --backend cuda: samples run concurrently on the GPU [default: as many as fit "
                   "in its free memory, at most 256]. Ignored on the CPU.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run with the same options: keep the shards already in "
                   "OUTPUT.shards/ and simulate the rest (needs --output).")
def run(net_path, data_path, timesteps, samples, encoding, mode, seed, poisson_rate, order, no_progress,
        workers, use_dask, scheduler, shard_size, as_json, output, sweep, force, backend, batch, resume):
    """Simulate a network on a data set and report accuracy and operation counts.

    Samples run in shards on every core (--workers, --dask, --scheduler); with
    --output each finished shard is kept in OUTPUT.shards/ until the merged
    file is written, so an interrupted run continues with --resume.
    """
    if resume and output is None:
        raise click.UsageError("--resume needs --output (the shards of a run are kept next to its output file)")
    _check_output_dir(output, force)
    checkpoints = _parse_sweep(sweep)
    if checkpoints:
        timesteps = max(checkpoints)
    options = {"timesteps": timesteps, "samples": samples, "encoding": encoding, "mode": mode,
               "seed": seed, "poisson_rate": poisson_rate, "order": order, "output": output,
               "sweep_timesteps": checkpoints, "backend": backend, "batch": batch}
    parallel = {"workers": workers, "dask": use_dask, "scheduler": scheduler, "shard_size": shard_size,
                "output": output, "resume": resume, "force": force}
    result, settings, data_source = _simulate(net_path, data_path, options, checkpoints, no_progress,
                                              "eventsnn run", parallel)
    with _user_errors():
        if output is not None:
            result.save(output, force)
            if parallel.get("store") is not None:
                parallel["store"].remove()  # the merged file holds everything now

    summary = result.summary()
    if as_json:
        summary["network"] = settings["network"]
        summary["data"] = settings["data"]
        click.echo(json.dumps(summary))
        return
    info = result.settings
    lines = [
        ("network", settings["network"]),
        ("data", data_source),
        ("samples", str(result.samples)),
        ("timesteps", f"{result.timesteps} ({info.get('mode', mode)})"),
        ("encoding", str(info.get("encoding"))),
    ]
    if result.accuracy is not None:
        lines.append(("accuracy", f"{100 * result.accuracy:.2f} %"))
    lines.append(("time/sample", f"{1000 * summary['seconds_per_sample']:.3f} ms"))
    if output is not None:
        lines.append(("results", output))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        click.echo(f"{key.ljust(width)}  {value}")
    click.echo()
    for line in _format_table(summary["layers"], result.timesteps):
        click.echo(line)
    if summary["sweep"]:
        click.echo()
        click.echo(f"{'timesteps':>9}  {'accuracy':>8}  {'spikes/sample':>14}  {'syn ops/sample':>16}")
        for row in summary["sweep"]:
            acc = "-" if row["accuracy"] is None else f"{100 * row['accuracy']:.2f} %"
            click.echo(f"{row['timesteps']:>9}  {acc:>8}  {row['spikes_per_sample']:>14,.1f}  "
                       f"{row['syn_ops_per_sample']:>16,.1f}")


def _simulate(net_path, data_path, options, checkpoints, no_progress, command, parallel=None):
    """Load the network and data (shipped defaults if omitted) and run; return (result, settings, source).

    ``parallel`` (workers, dask, scheduler, shard_size, output, resume, force)
    chooses where shards run; it gets ``how``, ``shards``, ``wall`` and
    ``store`` (the :class:`~eventsnn.parallel.ShardStore`, or None) filled in.
    """
    from eventsnn.datasets import load_dataset
    from eventsnn.io import load_network
    from eventsnn.results import run_dataset

    parallel = {} if parallel is None else parallel
    with contextlib.ExitStack() as stack:
        if net_path is None:
            net_path = _shipped(stack, DEFAULT_NET, "network", "--net")
        if data_path is None:
            data_path = _shipped(stack, DEFAULT_DATA, "data set", "--data")
        with _user_errors():
            from eventsnn.io.models import not_a_network

            not_a_network(net_path)  # an ONNX/Keras/NIR model: say to convert it
            net = load_network(net_path)
            data = load_dataset(data_path, limit=options["samples"])
        x = _match_input(data.x, net.input_shape, data_path)
        settings = {"network": os.fspath(net_path), "data": os.fspath(data_path), "command": command,
                    "options": options}
        kwargs = dict(timesteps=options["timesteps"], encoding=options["encoding"],
                      mode=options["mode"], seed=options["seed"], poisson_rate=options["poisson_rate"],
                      settings=settings, checkpoints=checkpoints, order=options["order"],
                      backend=options.get("backend", "cpu"))
        if options.get("batch") is not None:
            kwargs["batch"] = options["batch"]
        import time

        start = time.perf_counter()
        with _user_errors():
            client = _dask_client(parallel)
            if client is not None:
                stack.callback(_close_dask, client)
            workers = parallel.get("workers")
            store = _shard_store(parallel, net_path, x, data.y, kwargs, workers, client)
            # one GPU takes the samples in batches itself: no shards on local threads
            on_gpu = _resolved_backend(kwargs["backend"]) == "cuda"
            if client is None and store is None and (x.shape[0] <= 1 or on_gpu or (workers or _cores()) == 1):
                if no_progress or x.shape[0] <= 1:
                    result = run_dataset(net, x, data.y, **kwargs)
                else:
                    from eventsnn.progress import Progress  # compile notice, ETA after the first sample

                    with Progress(x.shape[0], "Simulating") as bar:
                        result = run_dataset(net, x, data.y, progress=bar.update, **kwargs)
            else:
                result = _run_shards(net, x, data.y, kwargs, parallel, client, store, no_progress)
        parallel["wall"] = max(time.perf_counter() - start, 1e-9)
    return result, settings, data.source


def _resolved_backend(name):
    from eventsnn.engine.backends import resolve_backend
    return resolve_backend(name)


def _cores():
    from eventsnn.parallel import default_workers
    return default_workers()


def _dask_client(parallel):
    """A Dask client for --dask / --scheduler, or None (imports Dask only then)."""
    if not (parallel.get("dask") or parallel.get("scheduler")):
        return None
    if parallel.get("dask") and parallel.get("scheduler"):
        raise click.UsageError("give --dask (a local cluster) or --scheduler ADDRESS (an existing one), not both")
    from eventsnn.parallel.dask_runner import start_client

    return start_client(workers=parallel.get("workers") or _cores(), scheduler=parallel.get("scheduler"))


def _close_dask(client):
    from eventsnn.parallel.dask_runner import close_client

    with contextlib.suppress(Exception):
        close_client(client)


def _shard_store(parallel, net_path, x, y, kwargs, workers, client):
    """The folder OUTPUT.shards/ that keeps finished shards (None without a regular --output file)."""
    output = parallel.get("output")
    if output is None:
        return None
    if os.path.exists(output) and not os.path.isfile(output):
        if parallel.get("resume"):
            raise click.UsageError("--resume needs --output to be a regular file (its shards are kept beside it)")
        return None  # --force onto a device or FIFO: nothing to resume into
    import eventsnn
    from eventsnn.convert import file_sha256
    from eventsnn.parallel.shards import ShardStore, default_shard_size, digest_arrays, existing_shard_size

    directory = output + ".shards"
    n = int(x.shape[0])
    size = parallel.get("shard_size")
    if size is None and parallel.get("resume"):
        size = existing_shard_size(directory)
    if size is None:
        size = default_shard_size(n, workers or _cores())
    parallel["shard_size"] = size
    manifest = {"settings": kwargs["settings"], "network_sha256": file_sha256(net_path),
                "data_sha256": digest_arrays(x, y), "samples": n, "shard_size": int(size),
                "eventsnn": eventsnn.__version__}
    store = ShardStore(directory, manifest, resume=parallel.get("resume", False))
    parallel["store"] = store
    return store


def _run_shards(net, x, y, kwargs, parallel, client, store, no_progress):
    from eventsnn.parallel import run_sharded
    from eventsnn.parallel.shards import default_shard_size, plan_shards

    n = int(x.shape[0])
    if client is not None:
        from eventsnn.parallel.local import _dask_workers
        workers = _dask_workers(client)
        where = parallel.get("scheduler") or "a local Dask cluster"
        parallel["how"] = f"{workers} Dask worker{'s' if workers != 1 else ''} ({where})"
    elif _resolved_backend(kwargs["backend"]) == "cuda":
        workers = 1  # one GPU: shards one after another, each in batches on the device
        parallel["how"] = "the GPU"
    else:
        workers = parallel.get("workers") or _cores()
        parallel["how"] = f"{workers} thread{'s' if workers != 1 else ''}"
    size = parallel.get("shard_size") or default_shard_size(n, workers)
    parallel["shards"] = len(plan_shards(n, size))
    if store is not None and store.resumed:
        done = len(store.finished(plan_shards(n, size)))
        click.echo(f"resuming: {done} of {parallel['shards']} shards are already done in {store.directory}",
                   err=True)
    run = dict(workers=workers, client=client, shard_size=size, store=store, **kwargs)
    if no_progress:
        return run_sharded(net, x, y, **run)
    from eventsnn.progress import Progress

    with Progress(n, "Simulating", rate=True, note=f"{parallel['how']}, {parallel['shards']} shards") as bar:
        return run_sharded(net, x, y, progress=bar.update, **run)


def _parse_sweep(text):
    if text is None:
        return []
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise click.BadParameter(f"expected comma-separated positive integers, got {text!r}",
                                 param_hint="--sweep-timesteps") from None
    if not values or values[0] < 1:
        raise click.BadParameter(f"expected comma-separated positive integers, got {text!r}",
                                 param_hint="--sweep-timesteps")
    return values


@main.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The converted network file to write (eventsnn HDF5).")
@click.option("--calibration", "calibration_path", required=True, type=click.Path(exists=True),
              help="Calibration data (any format `run` reads), in the ANN's input range.")
@click.option("--calibration-samples", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Use the first N calibration samples.")
@click.option("--method", type=click.Choice(["max", "percentile", "spike-norm"]), default="percentile",
              show_default=True, help="Normalisation: Diehl 2015 max, Rueckauer 2017 percentile, "
                                      "Sengupta 2019 spike-norm.")
@click.option("--percentile", type=click.FloatRange(0, 100, min_open=True), default=99.9,
              show_default=True, help="Percentile of positive activations (method percentile).")
@click.option("--reset", type=click.Choice(["subtract", "zero"]), default="subtract", show_default=True)
@click.option("--decoding", type=click.Choice(["spikes", "membrane"]), default="spikes", show_default=True,
              help="Read the output layer's spike counts or its membrane potential.")
@click.option("--encoding", type=click.Choice(["direct", "poisson"]), default="direct", show_default=True,
              help="Default input coding of the converted network.")
@click.option("--v-init", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              help="Initial membrane potential as a fraction of the threshold (0.5 halves the "
                   "rounding error at short latencies, Bu et al. 2022).")
@click.option("--fold-pools/--spiking-pools", default=True, show_default=True,
              help="Fold each average pool into the next conv/dense layer (exact; the pool stays "
                   "analog, as in the ANN), or make it a spiking layer (about 4x fewer synaptic "
                   "operations, lower accuracy at short latencies).")
@click.option("--max-spikes", type=click.IntRange(1, 1024), default=1, show_default=True,
              help="Spikes a neuron may fire per step (sinabs' MultiSpike): every rate is scaled by it, "
                   "so T steps resolve about as finely as T*K binary steps, at up to K times the spikes. "
                   "Needs average pools (a max-pool gate passes one spike per step).")
@click.option("--norm-timesteps", type=click.IntRange(min=1), default=100, show_default=True,
              help="Steps per calibration sample for spike-norm.")
@click.option("--format", "fmt", type=click.Choice(["auto", "onnx", "keras", "nir"]), default="auto",
              show_default=True, help="Model format.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Calibrate on N threads; the converted network does not depend on N. [default: "
                   "spike-norm, which simulates: every core; max and percentile: 1, as the ANN's "
                   "matrix products already use every core through BLAS]")
@click.option("--json", "as_json", is_flag=True, help="Print only a JSON summary on stdout.")
@click.option("--no-progress", is_flag=True, help="Do not show a progress bar.")
@_FORCE
@_MAX_MEMORY
def convert(model, output, calibration_path, calibration_samples, method, percentile, reset, decoding,
            encoding, v_init, fold_pools, max_spikes, norm_timesteps, fmt, seed, workers, as_json, no_progress,
            force):
    """Convert a trained ReLU ANN (ONNX, Keras HDF5 or NIR) into a spiking network."""
    from eventsnn.convert import convert as convert_ann
    from eventsnn.convert import source_info
    from eventsnn.datasets import load_dataset
    from eventsnn.io import save_network
    from eventsnn.io.models import read_model

    _check_output_dir(output, force)
    with _user_errors():
        ann = read_model(model, fmt)
        ann.source.update(source_info(model, ann.source.get("format", fmt)))
        data = load_dataset(calibration_path, limit=calibration_samples)
        x = _match_input(data.x, ann.input_shape, calibration_path)
        kwargs = dict(labels=data.y, method=method, percentile=percentile, reset=reset, decoding=decoding,
                      encoding=encoding, norm_timesteps=norm_timesteps, seed=seed, v_init=v_init,
                      fold_pools=fold_pools, max_spikes=max_spikes,
                      workers=workers or (_cores() if method == "spike-norm" else 1))
        if no_progress:
            net, report = convert_ann(ann, x, **kwargs)
        else:
            from eventsnn.progress import Progress

            # only spike-norm simulates (and compiles kernels); the other methods run the ANN
            notice = None if method == "spike-norm" else False
            with Progress(x.shape[0], f"Calibrating ({method})", notice=notice) as bar:
                net, report = convert_ann(ann, x, progress=lambda n: bar.update(int(n)), **kwargs)
        net.provenance["calibration"] = {"path": os.path.abspath(calibration_path), "source": data.source}
        save_network(net, output, force)
    summary = {"output": output, **net.provenance}
    if as_json:
        click.echo(json.dumps(summary, default=float))
        return
    click.echo(f"model        {model} ({ann.source.get('format')})")
    click.echo(f"method       {method}" + (f" ({percentile} %)" if method == "percentile" else ""))
    click.echo(f"calibration  {report.calibration_samples} samples from {data.source}")
    if max_spikes > 1:
        click.echo(f"max spikes   {max_spikes} per neuron per step (rates scaled {max_spikes}x)")
    if report.ann_accuracy is not None:
        click.echo(f"ANN accuracy {100 * report.ann_accuracy:.2f} % (on the calibration samples)")
    if report.normalized_ann_accuracy is not None:
        click.echo(f"normalised   {100 * report.normalized_ann_accuracy:.2f} % (ReLU net with the SNN's weights)")
    click.echo(f"written      {output}")
    click.echo()
    click.echo(f"{'layer':<16} {'kind':<10} {'scale':>12} {'threshold':>12}")
    for layer in net.layers:
        if layer.neuron is None and layer.kind != "maxpool2d":
            continue
        scale = report.scales.get(layer.name)
        thr = report.thresholds.get(layer.name)
        click.echo(f"{layer.name:<16} {layer.kind:<10} {'-' if scale is None else f'{scale:.5g}':>12} "
                   f"{'-' if thr is None else f'{thr:.5g}':>12}")


@main.command()
@click.argument("net_path", metavar="NET.h5", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="NIR file to write.")
@click.option("--pool", type=click.Choice(["avg", "sum"]), default="avg", show_default=True,
              help="Average pools as AvgPool2d, or as SumPool2d with the threshold times the window (sinabs).")
@click.option("--strict", is_flag=True,
              help="Refuse what NIR's equations cannot say (reset by subtraction, v_init, Poisson input) "
                   "instead of recording it in metadata.")
@click.option("--legacy", is_flag=True, help="Leave out v_reset (always 0) for NIR readers before 1.0.6 (sinabs 3.1).")
def export(net_path, output, pool, strict, legacy):
    """Export NET.h5 as a NIR graph (Lava, sinabs, Rockpool, snnTorch, Norse, Spyx, Nengo read NIR)."""
    from eventsnn.io import load_network
    from eventsnn.io.models import not_a_network
    from eventsnn.io.nir_export import export_summary

    _check_output_dir(output)
    with _user_errors():
        not_a_network(net_path)
        click.echo(export_summary(load_network(net_path), output, pool=pool, strict=strict, legacy=legacy))


@main.command("energy-report")
@click.argument("results", required=False, type=click.Path(exists=True, dir_okay=False))
@_run_options
@click.option("--profile", default=None, metavar="NAME|FILE[:NAME]",
              help="Hardware profile: a shipped one (see --list-profiles) or a TOML file. "
                   "[default: cmos45_fp32]")
@click.option("--first-layer", type=click.Choice(["once", "per-step"]), default="once", show_default=True,
              help="Price the analog first layer's MACs once per sample or once per step.")
@click.option("--json", "as_json", is_flag=True, help="Print only JSON on stdout.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Also write the table as CSV.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Also draw energy per layer, SNN against ANN, as a PNG (needs matplotlib).")
@click.option("--list-profiles", is_flag=True, help="List the shipped profiles and exit.")
@_FORCE
def energy_report_cmd(results, net_path, data_path, timesteps, samples, encoding, mode, seed, poisson_rate,
                      order, no_progress, workers, use_dask, scheduler, shard_size, profile, first_layer, as_json, csv_path, plot_path, list_profiles,
                      force):
    """Energy per sample from exact operation counts, against the same ANN.

    RESULTS is a file written by `eventsnn run --output`; without it the
    network is run first (the shipped default network and images if --net and
    --data are omitted).
    """
    from eventsnn.energy import energy_report, get_profile, read_profiles
    from eventsnn.results import load_results

    if list_profiles:
        with _user_errors():
            for p in read_profiles().values():
                click.echo(f"{p.name:<14} MAC {p.mac_pj:g} pJ, synop {p.synop_pj:g} pJ"
                           + (f", update {p.neuron_update_pj:g} pJ" if p.neuron_update_pj else "")
                           + f"  - {p.description}")
        return
    for path in (csv_path, plot_path):
        _check_output_dir(path, force)
    with _user_errors():
        prof = get_profile(profile)
    if results is not None:
        if net_path or data_path:
            raise click.UsageError("give either RESULTS or --net/--data, not both")
        with _user_errors():
            result = load_results(results)
        source = results
    else:
        options = {"timesteps": timesteps, "samples": samples, "encoding": encoding, "mode": mode,
                   "seed": seed, "poisson_rate": poisson_rate, "order": order}
        click.echo("energy-report: no RESULTS file given, so the network is simulated first "
                   f"({'--net' if net_path else 'the shipped network'} on "
                   f"{f'{samples} samples' if samples else 'every sample'} of "
                   f"{'--data' if data_path else 'the shipped Fashion-MNIST images'}; "
                   "`eventsnn run --output R.h5` then `eventsnn energy-report R.h5` reuses a run)", err=True)
        parallel = {"workers": workers, "dask": use_dask, "scheduler": scheduler, "shard_size": shard_size}
        result, settings, _ = _simulate(net_path, data_path, options, None, no_progress,
                                        "eventsnn energy-report", parallel)
        source = settings["network"]
    with _user_errors():
        report = energy_report(result, prof, first_layer)
    doc = report.as_dict()
    doc["source"] = source
    with _user_errors():
        if csv_path:
            _write_csv(csv_path, report, force)
            click.echo(f"energy-report: wrote the table as CSV to {os.path.abspath(csv_path)}", err=True)
        if plot_path:
            from eventsnn.plots import plot_energy
            plot_energy(report, plot_path, force=force)
            click.echo(f"energy-report: wrote the plot to {os.path.abspath(plot_path)}", err=True)
    if as_json:
        click.echo(json.dumps(doc))
        return
    for line in _energy_lines(report, source):
        click.echo(line)


def _write_csv(path, report, force=False):
    import csv

    from eventsnn.io.atomic import atomic_path
    keys = list(report.rows[0].keys())
    with atomic_path(path, force) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            for row in report.rows:
                writer.writerow(row)
            writer.writerow({"layer": "total", **{k: v for k, v in report.totals.items() if k in keys}})


def _energy_lines(report, source):
    p = report.profile
    t = report.totals
    out = [f"source       {source}",
           f"profile      {p.name}: {p.description}",
           f"constants    MAC {p.mac_pj:g} pJ, synaptic op {p.synop_pj:g} pJ"
           + (f", neuron update {p.neuron_update_pj:g} pJ" if p.neuron_update_pj else "")
           + (f", spike {p.spike_pj:g} pJ" if p.spike_pj else ""),
           f"terms used   {', '.join(p.terms())}",
           f"source of constants: {p.source}",
           f"first layer  analog input MACs counted {report.first_layer.replace('-', ' ')}"
           + (" (x T)" if report.first_layer == "per-step" else " per sample"),
           f"samples      {report.samples}, T = {report.timesteps}; all figures per sample", ""]
    headers = ("layer", "neurons", "spikes", "rate", "syn ops (exact)", "rate estimate", "ANN MACs",
               "SNN nJ", "ANN nJ", "SNN/ANN")

    def cells(r):
        est = r.get("rate_estimate_syn_ops")
        ratio = r.get("snn_over_ann")
        return (str(r["layer"]), f"{int(r['neurons']):,}", f"{r['spikes']:,.1f}",
                f"{r['spike_rate']:.4f}" if "spike_rate" in r else "",
                f"{r['syn_ops']:,.0f}" + (f" +{r['analog_macs']:,.0f} MAC" if r["analog_macs"] else ""),
                "-" if not est else f"{est:,.0f}", f"{int(r['ann_macs']):,}",
                f"{r['snn_pj'] / 1000:,.2f}", f"{r['ann_pj'] / 1000:,.2f}",
                "-" if ratio is None else f"{ratio:.3f}")

    body = [cells(r) for r in report.rows]
    total = dict(t, layer="total", neurons=sum(r["neurons"] for r in report.rows))
    foot = cells(total)
    widths = [max(len(row[i]) for row in [headers, foot, *body]) for i in range(len(headers))]

    def line(row):
        return "  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])])

    rule = "  ".join("-" * w for w in widths)
    out += [line(headers), rule, *(line(r) for r in body), rule, line(foot), ""]
    if t["snn_over_ann"]:
        out.append(f"SNN {t['snn_pj'] / 1e6:,.3f} uJ vs ANN {t['ann_pj'] / 1e6:,.3f} uJ per sample: "
                   + (f"the SNN needs {1 / t['snn_over_ann']:.2f}x less energy than the ANN."
                      if t["snn_over_ann"] < 1 else
                      f"the SNN needs {t['snn_over_ann']:.2f}x the ANN's energy."))
    return out + report.notes()


# STDP training and the feature readout live in cli/stdp.py.
from .stdp import evaluate_features_cmd, train_stdp_cmd  # noqa: E402

main.add_command(train_stdp_cmd)
main.add_command(evaluate_features_cmd)

if __name__ == "__main__":  # pragma: no cover
    main()


@main.command("train-bptt")
@click.option("--net", "net_path", type=click.Path(exists=True, dir_okay=False), help="Architecture to train (HDF5).")
@click.option("--init", "init_path", type=click.Path(exists=True, dir_okay=False),
              help="Start from a converted network (hybrid: conversion, then spike-based fine-tuning).")
@click.option("--data", "data_path", required=True, type=click.Path(exists=True),
              help="Training data (a validation split is held out of it; never pass the test set).")
@click.option("--timesteps", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--samples", type=click.IntRange(min=2), default=None, help="Use only the first N samples.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True)
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam", show_default=True)
@click.option("--momentum", type=click.FloatRange(0, 1), default=0.9, show_default=True)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option("--schedule", type=click.Choice(["cosine", "step", "constant"]), default="cosine", show_default=True)
@click.option("--surrogate", type=click.Choice(["fast_sigmoid", "arctan", "lee"]), default="fast_sigmoid",
              show_default=True)
@click.option("--alpha", type=click.FloatRange(min=0, min_open=True), default=None, help="Surrogate sharpness.")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True)
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              help="Dropout on hidden spikes, one mask per sample for all steps.")
@click.option("--learn-leak", is_flag=True,
              help="Also train one leak per layer (as PLIF); saved layers become LIF.")
@click.option("--leak-init", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="Where learnable leaks start [default: each layer's own leak, 0.9 for IF layers].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--check-samples", type=click.IntRange(min=0), default=16, show_default=True,
              help="Validation samples re-run in the event engine to check spike identity.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--resume", is_flag=True, help="Continue from the checkpoint OUTPUT.ckpt.npz.")
@click.option("--json", "as_json", is_flag=True, help="Print only a JSON summary on stdout.")
@click.option("--no-progress", is_flag=True)
def train_bptt(net_path, init_path, data_path, output, samples, check_samples, resume, as_json, no_progress,
               **options):
    """Train a spiking network by backpropagation through time (surrogate gradients)."""
    from eventsnn.learn.train import TrainConfig, run_training

    if (net_path is None) == (init_path is None):
        raise click.ClickException("give exactly one of --net ARCH.h5 or --init CONVERTED.h5")
    _check_output_dir(output)
    with _user_errors():
        summary = run_training(net_path or init_path, data_path, output, TrainConfig(**options), samples=samples,
                               hybrid=init_path is not None, resume=resume, check_samples=check_samples,
                               progress=not no_progress and not as_json,
                               log=None if as_json else (lambda line: click.echo(line, err=True)))
    if as_json:
        click.echo(json.dumps(summary, default=float))
        return
    click.echo(f"best epoch   {summary['best_epoch'] + 1} (validation accuracy {100 * summary['best_val_acc']:.2f} %)")
    ident = summary["engine_identity"]
    extra = (f", {ident['differing_membrane_outputs']} differing membrane outputs"
             if "differing_membrane_outputs" in ident else "")
    click.echo(f"engine check {ident['samples']} samples, {ident['differing_spikes']} differing spikes{extra}")
    click.echo(f"written      {output}")
