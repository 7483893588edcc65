"""The eventsnn command line (installed as ``eventsnn.cli``; entry point ``eventsnn.cli.main:main``)."""
