"""The function side of AWS: code that runs where the workloads run, not on the user's machine.

Kept apart from the control plane (:mod:`serverless_hpc.aws.outputs`, ``status``, ``cli``,
and the targets that drive a deployment) because it ships inside the Lambda image and the
comparison instance, with a different life: it must import little (its imports are a cold
start), must never need the driver's modules, and changes with the contract and the
workloads, not with how a deployment is found or driven. Imports therefore point one way:
this package uses the shared handler, the workload specs, the dataset and the S3 store; it
imports nothing of the control plane or of :mod:`serverless_hpc.targets`, and they import
nothing of it.

* :mod:`~serverless_hpc.aws.function.staging`: which dataset splits a request reads (from its
  workload's spec) and copying them from the dataset bucket into a local directory, md5
  checked; the Lambda adapter and the EC2 runner (``ec2/runner.py``) both stage this way.
* :mod:`~serverless_hpc.aws.function.adapter`: :class:`LambdaAdapter`, what
  ``lambdas/handler.py`` calls.
"""
