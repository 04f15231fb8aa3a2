"""Operations tooling around the stack: the local engine, drift detection."""
