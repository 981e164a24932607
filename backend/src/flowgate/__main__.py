from flowgate.cli import app

app(prog_name="flowgate")
