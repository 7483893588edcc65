"""``eventsnn train-stdp`` and ``eventsnn evaluate-features``: thin commands over eventsnn.learn.

Registered on the main group by cli/main.py. Helpers of cli/main.py are
imported inside the commands (main imports this module at its end).
"""

from __future__ import annotations

import json
import os
import sys

import click

RULES = ("deterministic", "multiplicative", "additive", "stochastic")


def _kwta(text):
    if text is None or text.lower() == "none":
        return None
    try:
        k, r = (int(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"expected K,RADIUS (e.g. 1,2) or 'none', got {text!r}", param_hint="--kwta") from None
    if k < 1 or r < 0:
        raise click.BadParameter(f"need K >= 1 and RADIUS >= 0, got {text!r}", param_hint="--kwta")
    return (k, r)


def _layers(text):
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise click.BadParameter("name at least one layer", param_hint="--layers")
    return names


@click.command("train-stdp")
@click.option("--net", "net_path", type=click.Path(exists=True, dir_okay=False),
              help="Architecture (network file) whose layers learn. Not needed with --resume.")
@click.option("--data", "data_path", required=True, type=click.Path(exists=True),
              help="Training images (pixels in [0, 1] after loading), e.g. train-images-idx3-ubyte.gz.")
@click.option("--layers", default=None, help="Comma-separated conv2d/dense layers to learn, in order.")
@click.option("--rule", type=click.Choice(RULES), default="deterministic", show_default=True,
              help="deterministic = multiplicative trace STDP; stochastic = binary/few-level weights.")
@click.option("--samples", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Training samples per layer (cycles through the data set).")
@click.option("--timesteps", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--eta-plus", type=float, default=0.01, show_default=True)
@click.option("--eta-minus", type=float, default=0.0075, show_default=True)
@click.option("--tau-plus", type=float, default=5.0, show_default=True)
@click.option("--tau-minus", type=float, default=5.0, show_default=True)
@click.option("--w-min", type=float, default=0.0, show_default=True)
@click.option("--w-max", type=float, default=1.0, show_default=True)
@click.option("--gamma-pot", type=float, default=0.1, show_default=True, help="Stochastic: P_pot at dt = 0.")
@click.option("--tau-pot", type=float, default=5.0, show_default=True, help="Stochastic: decay of P_pot.")
@click.option("--p-dep", type=float, default=0.02, show_default=True, help="Stochastic: P_dep.")
@click.option("--window", type=float, default=10.0, show_default=True, help="Stochastic: potentiation window.")
@click.option("--levels", type=click.IntRange(min=2), default=2, show_default=True,
              help="Stochastic: weight levels (2: binary).")
@click.option("--kwta", default="1,2", show_default=True, metavar="K,RADIUS|none",
              help="k-winners-take-all across maps within RADIUS.")
@click.option("--theta-plus", type=click.FloatRange(min=0), default=0.05, show_default=True,
              help="Adaptive threshold increment (per map, per spike per position).")
@click.option("--normalize", type=click.FloatRange(min=0, min_open=True), default=None,
              help="After each sample, scale each map's incoming weights to this sum (Diehl & Cook).")
@click.option("--once-per-map", is_flag=True,
              help="Each map learns at its first spike of a sample only (one winner per map per image).")
@click.option("--x-tar", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Deterministic: presynaptic target trace (quiet inputs are depressed at a post spike).")
@click.option("--init", type=click.Choice(["keep", "random"]), default="keep", show_default=True,
              help="Start from the file's weights, or seeded random ones in the rule's range.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Learned network file.")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=500, show_default=True,
              help="Write the run so far to OUTPUT.ckpt.h5 every N samples (0: never).")
@click.option("--resume", "resume_path", type=click.Path(exists=True, dir_okay=False),
              help="Continue the run recorded in this checkpoint exactly (its settings are used).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Draw the learned kernels as a PNG.")
@click.option("--no-progress", is_flag=True)
def train_stdp_cmd(net_path, data_path, layers, rule, samples, timesteps, eta_plus, eta_minus, tau_plus, tau_minus,
                   w_min, w_max, gamma_pot, tau_pot, p_dep, window, levels, kwta, theta_plus, normalize, once_per_map, x_tar,
                   init, seed, output,
                   checkpoint_every, resume_path, plot_path, no_progress):
    """Learn conv/dense layers online with STDP, layer by layer."""
    from eventsnn.datasets import load_dataset
    from eventsnn.io import load_network, save_network
    from eventsnn.learn.stdp import STDPRule
    from eventsnn.learn.stdp_train import TrainSettings, read_checkpoint, train_stdp

    from .main import _check_output_dir, _match_input, _user_errors

    _check_output_dir(output)
    if plot_path is not None:
        _check_output_dir(plot_path)
    if (net_path is None) == (resume_path is None):
        raise click.UsageError("give exactly one of --net ARCH.h5 and --resume CHECKPOINT.h5")
    ckpt_path = output + ".ckpt.h5"
    with _user_errors():
        if resume_path is not None:
            net = load_network(resume_path)
            settings, state, _ = read_checkpoint(net, resume_path)
            click.echo(f"resuming {resume_path}: layer {settings.layers[min(state.layer, len(settings.layers) - 1)]!r}, "
                       f"sample {state.sample} of {settings.samples}", err=True)
        else:
            if layers is None:
                raise click.UsageError("--layers is required (e.g. --layers conv1)")
            net = load_network(net_path)
            kind = "multiplicative" if rule == "deterministic" else rule
            settings = TrainSettings(
                layers=_layers(layers), samples=samples, timesteps=timesteps, kwta=_kwta(kwta),
                theta_plus=theta_plus, seed=seed, init=init, normalize=normalize, once=once_per_map,
                rule=STDPRule(kind, eta_plus=eta_plus, eta_minus=eta_minus, tau_plus=tau_plus, tau_minus=tau_minus,
                              w_min=w_min, w_max=w_max, gamma_pot=gamma_pot, tau_pot=tau_pot, p_dep=p_dep,
                              window=window, levels=levels, x_tar=x_tar))
        data = load_dataset(data_path)
    x = _match_input(data.x, net.input_shape, data_path)
    if x.ndim == 2:
        x = x.reshape(x.shape[0], 1, 1, -1)

    def report(info):
        if no_progress:
            return
        sys.stderr.write(f"\r{info['layer']}: {info['sample']}/{info['samples']}  "
                         f"{info['samples_per_s']:.1f} samples/s  rate {info['rate']:.4f}/neuron/step  "
                         f"weight change {info['weight_change']:.4g}   ")
        if info["sample"] == info["samples"]:
            sys.stderr.write("\n")
        sys.stderr.flush()

    with _user_errors():
        learned = train_stdp(net, x, None if resume_path else settings, resume=resume_path is not None,
                             checkpoint=(lambda n: save_network(n, ckpt_path)) if checkpoint_every else None,
                             checkpoint_every=checkpoint_every, progress=report)
        save_network(learned, output)
        if plot_path is not None:
            from eventsnn.learn.figures import plot_kernels
            plot_kernels(learned.layer(settings.layers[0]).weight, path=plot_path)
    if os.path.exists(ckpt_path):
        os.unlink(ckpt_path)  # the finished file supersedes it
    click.echo(json.dumps({"output": output, **learned.provenance["stdp"]["settings"]}))


@click.command("evaluate-features")
@click.option("--net", "net_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--train", "train_path", required=True, type=click.Path(exists=True), help="Labelled training images.")
@click.option("--test", "test_path", required=True, type=click.Path(exists=True), help="Labelled test images.")
@click.option("--layers", required=True, help="Comma-separated spiking layers whose pooled counts are the features.")
@click.option("--train-samples", type=click.IntRange(min=2), default=None, help="Use the first N training images.")
@click.option("--test-samples", type=click.IntRange(min=1), default=None, help="Use the first N test images.")
@click.option("--per-class", type=click.IntRange(min=1), default=None,
              help="Labelled examples per class for the readout (seeded pick) [default: all].")
@click.option("--grid", type=click.IntRange(min=1), default=4, show_default=True, help="Pooling grid per map.")
@click.option("--timesteps", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def evaluate_features_cmd(net_path, train_path, test_path, layers, train_samples, test_samples, per_class, grid,
                          timesteps, seed, as_json):
    """Linear (ridge, closed form) readout of pooled spike counts: test accuracy."""
    from eventsnn.datasets import load_dataset
    from eventsnn.io import load_network
    from eventsnn.learn.readout import RidgeReadout, labels_per_class, spike_features

    from .main import _match_input, _user_errors

    names = _layers(layers)
    with _user_errors():
        net = load_network(net_path)
        train = load_dataset(train_path, limit=train_samples)
        test = load_dataset(test_path, limit=test_samples)
        if train.y is None or test.y is None:
            raise click.ClickException("evaluate-features needs labelled training and test sets")
        pick = labels_per_class(train.y, per_class, seed)
        xtr = _match_input(train.x[pick], net.input_shape, train_path)
        xte = _match_input(test.x, net.input_shape, test_path)
        ftr = spike_features(net, xtr, names, timesteps, seed, grid)
        fte = spike_features(net, xte, names, timesteps, seed + 1, grid)
        readout = RidgeReadout().fit(ftr, train.y[pick], n_classes=int(max(train.y.max(), test.y.max())) + 1)
        acc = readout.accuracy(fte, test.y)
    out = {"accuracy": acc, "train_samples": int(pick.size), "test_samples": int(xte.shape[0]),
           "features": int(ftr.shape[1]), "lambda": readout.lam, "loo_error": readout.loo_error}
    if as_json:
        click.echo(json.dumps(out))
    else:
        for k, v in out.items():
            click.echo(f"{k:<14} {100 * v:.2f} %" if k == "accuracy" else f"{k:<14} {v}")
