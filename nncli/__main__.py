"""`python -m nncli`: the same as the `nncli` command."""
import sys

from nncli import KERNELS_MISSING

if KERNELS_MISSING:
    sys.exit(f"Error: {KERNELS_MISSING}")

from nncli.cli import main  # noqa: E402  (needs the kernels checked first)

if __name__ == "__main__":
    main()
