"""The `conveyor` command line."""

import os

# The CLI is a program, not a library: Conveyor uses no pydantic plugin, and
# looking for them reads the metadata of every installed distribution when the
# first model is built (0.1-0.5 s of every command). An explicit setting wins.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
