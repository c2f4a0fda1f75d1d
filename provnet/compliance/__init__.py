"""Nightly compliance: backups into git, drift, baseline rules, waivers, history and the report."""
