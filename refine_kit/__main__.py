"""`python -m refine_kit ...` is the `refine-kit` command, for shells where it is not on PATH."""

from refine_kit.cli import app

app(prog_name="refine-kit")
