"""`python -m llmsched ...` is the `llmsched` command."""

from llmsched.experiments.cli import main

if __name__ == "__main__":  # importing this module (docs tools, inspection) runs nothing
    raise SystemExit(main())
