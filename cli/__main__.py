"""`python -m cli ...` is the `csp` command."""

from cli import main

main()
