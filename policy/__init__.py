"""The platform's policy pack: rules in rules.py, served to the engine by __main__.py."""
