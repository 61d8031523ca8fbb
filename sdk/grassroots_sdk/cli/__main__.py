"""`python -m grassroots_sdk.cli`: the `grassroots` command without its script."""

from grassroots_sdk.cli import main

main()
