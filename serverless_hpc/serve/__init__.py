"""``shpc serve``: a small web application over the benchmark driver and its results directory.

Pages list the runs, start one (a real ``shpc bench`` child process writing the same run
directory as the terminal would), follow it live from its own ``records.jsonl`` through
server-sent events, open its report and compare two runs (``shpc compare``). The page uses
the JSON API documented in :mod:`serverless_hpc.serve.app`.

Layers: :mod:`.cli` (stdlib only, registered in ``serverless_hpc.cli.PLUGIN_COMMANDS``) ->
:mod:`.app` (routes, security) -> :mod:`.runs` (run directories, child processes, forms) and
:mod:`.events` (tailing records). Nothing here imports TensorFlow, LiteRT or boto3: the
server reads files and starts processes; the child does the work.
"""
