"""A tiny zoo plugin that the core's test suite installs through its entry point."""
