from voicebook.cli import main

main()
