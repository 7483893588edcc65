"""Regenerate the pictures of docs/DEBUGGING.md from the shipped default network.

    python docs/images/make_images.py

Writes raster.png, membrane.png, activity.png and energy.png next to this
script: the default converted Fashion-MNIST network (data/default_net.h5) on
test image 0 of data/fashion-mnist-sample.npz (an ankle boot), 100 steps.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "data"
TIMESTEPS = 100
IMAGE = 0
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def save(ax, name: str) -> None:
    import matplotlib.pyplot as plt

    from eventsnn.io.atomic import atomic_path

    path = HERE / name
    ax.figure.tight_layout()
    with atomic_path(path) as tmp:
        ax.figure.savefig(tmp, dpi=120, format="png")
    plt.close(ax.figure)
    print("wrote", path)


def main() -> None:
    from eventsnn.datasets import load_dataset
    from eventsnn.energy import energy_report, get_profile
    from eventsnn.engine.simulator import Simulator
    from eventsnn.io import load_network
    from eventsnn.plots import plot_activity, plot_energy, plot_membrane, plot_raster, short_name
    from eventsnn.results import run_dataset

    net = load_network(DATA / "default_net.h5")
    data = load_dataset(DATA / "fashion-mnist-sample.npz", limit=IMAGE + 1)
    x, label = data.x[IMAGE], int(data.y[IMAGE])
    what = f"Fashion-MNIST test image {IMAGE} ({CLASSES[label]})"

    sim = Simulator(net, timesteps=TIMESTEPS, record_spikes=True)
    output = sim.layer_names[-1]
    sim.watch(output, label)  # the neuron of the true class
    sim.reset(x)
    sim.run()
    counts = sim.output().astype(int).tolist()
    print(f"label {label}, prediction {sim.prediction()}, output spikes {counts}")

    ax = plot_raster(sim)
    ax.set_title(f"Spike raster, default network - {what}, T = {TIMESTEPS}", fontsize=11)
    save(ax, "raster.png")

    ax = plot_membrane(sim, output, label)
    ax.set_title(f"Output neuron {label} ('{CLASSES[label]}') of the default network, "
                 f"test image {IMAGE}, T = {TIMESTEPS}", fontsize=11)
    save(ax, "membrane.png")

    ax = plot_activity(sim, sim.layer_names[1])
    ax.set_title(f"{short_name(sim.layer_names[1])} (first conv): spikes per pixel, sum of 16 channels\n"
                 f"{what}, T = {TIMESTEPS}",
                 fontsize=10)
    save(ax, "activity.png")

    result = run_dataset(net, x[None], data.y[IMAGE:IMAGE + 1], timesteps=TIMESTEPS)
    ax = plot_energy(energy_report(result, get_profile(None)))
    save(ax, "energy.png")


if __name__ == "__main__":
    main()
