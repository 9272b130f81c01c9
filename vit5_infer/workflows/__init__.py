"""One library entry per stage, each taking a progress callback and never importing the CLI."""
