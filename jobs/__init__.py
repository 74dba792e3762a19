"""Thin entrypoints for `ray job submit ... -- python -m jobs.<stage> --config jobs/configs/<stage>.yaml`."""
