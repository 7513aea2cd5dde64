"""The command line: `cleanroom run|test|policy|audit|report|images|doctor|prune|serve`, one
module per command over the same public API a Python user has."""
