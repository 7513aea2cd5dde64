"""Suite-wide settings."""

from hypothesis import settings

# The suite may run from a checkout the test user cannot write; keep examples in memory.
settings.register_profile("cleanroom", database=None)
settings.load_profile("cleanroom")
