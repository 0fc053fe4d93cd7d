"""Apps for tests/integration/test_fallback_servers.py: a new app in front of a legacy one."""
