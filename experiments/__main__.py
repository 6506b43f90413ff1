from llmsched.experiments.cli import main

raise SystemExit(main())
