"""One module per `nncli` command; each defines `command` (see nncli/cli.py)."""
