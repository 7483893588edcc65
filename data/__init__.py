"""Files shipped with eventsnn: the default network and the Fashion-MNIST sample."""
