"""Turns the engine's records (previews, drift reports) into what reviewers read on GitHub."""
