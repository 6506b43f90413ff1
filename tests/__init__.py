"""Test suite, mirroring the packages."""
