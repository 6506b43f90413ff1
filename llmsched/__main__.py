"""`python -m llmsched ...` is the `llmsched` command."""

from llmsched.experiments.cli import main

raise SystemExit(main())
