"""A model's contract: the signatures of the SavedModel version a stack serves, read from
`saved_model.pb` without TensorFlow, and the rules that classify a change between two of them.

Standard library only: the Pulumi program, the policy pack, the PR comment and the model's own
tests (in TensorFlow's environment) all import it.
"""
