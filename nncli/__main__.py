"""`python -m nncli`: the same as the `nncli` command."""
from nncli.cli import main

if __name__ == "__main__":
    main()
