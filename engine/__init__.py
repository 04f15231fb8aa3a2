"""Our driver of the real Pulumi engine (Automation API): the make targets, tests and workflows."""
