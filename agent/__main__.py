"""`python -m agent` runs the idp-agent command line."""

from agent.cli import main

main()
