"""`python -m cli …`: the `inferhook` command without the console script."""

from cli.main import main

main()
