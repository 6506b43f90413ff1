"""Registered policies of this family; every module here is imported by `policies.registry.load_all`."""
