from voicebook.cli import app

app()
