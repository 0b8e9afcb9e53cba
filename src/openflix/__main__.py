from openflix.cli import main

main()
