"""Workflows: one library entry per stage a user runs end to end (``predict``), built on the core
modules, the exporters and the engines; the CLI is a thin layer over these entries."""
