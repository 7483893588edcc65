"""Learning on the event engine: rules that plug into the event loop (see eventsnn.engine.plugs)."""
