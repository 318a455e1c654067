from voicebook.cli.main import app

app()
