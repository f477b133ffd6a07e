from flare.cli import main

main()
