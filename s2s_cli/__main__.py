"""``python -m s2s_cli``: the ``s2s`` command where no console script is installed."""

from s2s_cli.main import app

app(prog_name="s2s")
