"""The run directory, the one contract between the driver and everything that reads a run.

Only this package spells a run file's name (:mod:`.files`) or a field of a record
(:mod:`.record`), a batch line (:mod:`.jsonl`) or ``run.json`` (:mod:`.meta`); it writes and
reads them, typed, and it owns the run's claim on its directory (:mod:`.lock`). It imports
nothing from the driver, the report or the dashboard (see docs/design.md, "The run
directory").
"""

from serverless_hpc.rundir.files import (
    APPENDED,
    BATCHES,
    HEADLINE,
    RECORDS,
    REPORT_HTML,
    RUN_META,
    WRITTEN,
    RunPaths,
    paths,
)
from serverless_hpc.rundir.jsonl import (
    BATCH_FIELDS,
    BATCH_LINE,
    BATCH_SCHEMA,
    RECORD_FIELDS,
    RECORD_LINE,
    BadLine,
    JsonlRead,
    RecordWriter,
    Schema,
    append_batch,
    iter_jsonl,
    iter_record_rows,
    read_jsonl,
    read_records,
)
from serverless_hpc.rundir.lock import (
    Holder,
    RunDirError,
    RunLock,
    check_out_dir,
    check_run_id,
    lock_is_held,
)
from serverless_hpc.rundir.meta import (
    RunMeta,
    environment,
    open_regular,
    read_run_meta,
    read_serve_meta,
    write_run_meta,
    write_serve_meta,
)
from serverless_hpc.rundir.record import (
    RECORD_PAGE_FIELDS,
    RECORD_REQUIRED,
    RECORD_SCHEMA,
    REPORT_FIELDS,
    InvocationRecord,
    record_row,
)

__all__ = [
    "APPENDED",
    "BATCHES",
    "BATCH_FIELDS",
    "BATCH_LINE",
    "BATCH_SCHEMA",
    "HEADLINE",
    "RECORDS",
    "RECORD_FIELDS",
    "RECORD_LINE",
    "RECORD_PAGE_FIELDS",
    "RECORD_REQUIRED",
    "RECORD_SCHEMA",
    "REPORT_FIELDS",
    "REPORT_HTML",
    "RUN_META",
    "WRITTEN",
    "BadLine",
    "Holder",
    "InvocationRecord",
    "JsonlRead",
    "RecordWriter",
    "RunDirError",
    "RunLock",
    "RunMeta",
    "RunPaths",
    "Schema",
    "append_batch",
    "check_out_dir",
    "check_run_id",
    "environment",
    "iter_jsonl",
    "iter_record_rows",
    "lock_is_held",
    "open_regular",
    "paths",
    "read_jsonl",
    "read_records",
    "read_run_meta",
    "read_serve_meta",
    "record_row",
    "write_run_meta",
    "write_serve_meta",
]
