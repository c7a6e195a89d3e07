"""``python -m serverless_hpc.report RUN_DIR`` (how ``shpc bench`` builds a report in a child)."""

from serverless_hpc.report.build import main

raise SystemExit(main())
