"""llmsched.benchmarks: speed and scale measurements (not tests), incl. side by side with peers."""
