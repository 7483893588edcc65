"""The eventsnn command line (installed as eventsnn.cli)."""
