# Lean Lambda image (workload specs with image=lean): LiteRT, no TensorFlow, so cold starts stay
# small (ai-edge-litert imports in ~0.2 s / ~36 MB, against ~3 s / ~540 MB for TensorFlow).
# Build context: the repository root (the CDK asset excludes everything but the package and
# lambdas/). Which workload a function serves is set by $SHPC_WORKLOAD.
FROM public.ecr.aws/lambda/python:3.11

COPY lambdas/requirements-infer.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt && rm /tmp/requirements.txt

COPY serverless_hpc ${LAMBDA_TASK_ROOT}/serverless_hpc
COPY lambdas/__init__.py lambdas/handler.py ${LAMBDA_TASK_ROOT}/lambdas/

CMD ["lambdas.handler.handler"]
