"""Registered policies of this family; every module here is imported by `llmsched.policies.registry.load_all`."""
