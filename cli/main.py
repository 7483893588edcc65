"""``eventsnn`` command line: a thin layer over the library.

Every user error (a bad network file, a bad data set, a shape mismatch, a bad
option) ends as one ``Error: ...`` line on stderr and a non-zero exit status;
results go to stdout, the progress bar to stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from importlib import resources

import click
import numpy as np

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


def _check_output_dir(output: str | None) -> None:
    if output is None:
        return
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory):
        raise click.ClickException(f"{output}: the output directory {directory} does not exist")
    if os.path.isdir(output):
        raise click.ClickException(f"{output}: is a directory, not a file")


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="eventsnn", prog_name="eventsnn")
def main():
    """Event-driven simulator for deep spiking neural networks."""


@main.command()
@click.option("--net", "net_path", type=click.Path(exists=True, dir_okay=False),
              help="Network file (HDF5, eventsnn format). Default: the shipped default network.")
@click.option("--data", "data_path", type=click.Path(exists=True),
              help="Data set: .npz, IDX (MNIST family) or CIFAR binary file or directory. "
                   "Default: the shipped Fashion-MNIST sample.")
@click.option("--timesteps", type=click.IntRange(min=1), default=100, show_default=True,
              help="Simulation steps (duration in continuous mode).")
@click.option("--samples", type=click.IntRange(min=1), default=None,
              help="Run only the first N samples [default: all].")
@click.option("--encoding", type=click.Choice(["direct", "poisson"]), default=None,
              help="Input coding [default: the network's].")
@click.option("--mode", type=click.Choice(["discrete", "continuous"]), default="discrete",
              show_default=True, help="Time mode.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the Poisson encoder.")
@click.option("--poisson-rate", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="Scale of the Poisson spike probability per step.")
@click.option("--json", "as_json", is_flag=True, help="Print only a JSON summary on stdout.")
@click.option("--output", type=click.Path(dir_okay=False),
              help="Write all counts to this HDF5 results file.")
@click.option("--no-progress", is_flag=True, help="Do not show a progress bar.")
def run(net_path, data_path, timesteps, samples, encoding, mode, seed, poisson_rate, as_json,
        output, no_progress):
    """Simulate a network on a data set and report accuracy and operation counts."""
    from eventsnn.datasets import load_dataset
    from eventsnn.io import load_network
    from eventsnn.results import run_dataset

    _check_output_dir(output)
    with contextlib.ExitStack() as stack:
        if net_path is None:
            net_path = _shipped(stack, DEFAULT_NET, "network", "--net")
        if data_path is None:
            data_path = _shipped(stack, DEFAULT_DATA, "data set", "--data")
        with _user_errors():
            net = load_network(net_path)
            data = load_dataset(data_path, limit=samples)
        x = _match_input(data.x, net.input_shape, data_path)
        settings = {
            "network": os.fspath(net_path), "data": os.fspath(data_path),
            "command": "eventsnn run",
            "options": {"timesteps": timesteps, "samples": samples, "encoding": encoding,
                        "mode": mode, "seed": seed, "poisson_rate": poisson_rate,
                        "output": output},
        }
        kwargs = dict(y=data.y, timesteps=timesteps, encoding=encoding, mode=mode, seed=seed,
                      poisson_rate=poisson_rate, settings=settings)
        with _user_errors():
            if no_progress or x.shape[0] <= 1:
                result = run_dataset(net, x, **kwargs)
            else:
                with click.progressbar(length=x.shape[0], label="Simulating", file=sys.stderr) as bar:
                    result = run_dataset(net, x, progress=bar.update, **kwargs)
            if output is not None:
                result.save(output)

    summary = result.summary()
    if as_json:
        summary["network"] = settings["network"]
        summary["data"] = settings["data"]
        click.echo(json.dumps(summary))
        return
    info = result.settings
    lines = [
        ("network", settings["network"]),
        ("data", data.source),
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


if __name__ == "__main__":  # pragma: no cover
    main()
