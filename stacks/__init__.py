"""The CDK app's parts: constructs for the logical units, one stack for the deployment unit.

``data.py`` (Dataset: the buckets and the dataset staging), ``functions.py`` (WorkloadFunction:
one Lambda function built from a workload spec), ``comparison.py`` (ComparisonInstance: the EC2
instance) are constructs; ``benchmark.py`` composes them into the one stack ``app.py``
deploys. ``config.py`` is the typed app configuration; ``nag.py`` holds the acknowledgments of
accepted cdk-nag and checkov findings; ``tagging.py`` tags what CDK's tag aspect cannot reach.
"""
