"""One module per `llmsched` subcommand: `HELP`, `add_arguments(parser)`, `run(args) -> int`."""
