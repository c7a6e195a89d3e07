"""The CDK stacks: one per file (data, functions, comparison EC2) plus their typed config."""
