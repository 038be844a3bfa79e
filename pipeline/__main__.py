import os
import sys

# A job of a local workflow hands itself to the job server (pipeline/jobserver.py) when one
# runs: it then pays no imports. Checked before importing anything heavy.
if os.environ.get("RLREPRO_JOBSERVER"):
    from pipeline.jobserver import run_via_server

    rc = run_via_server(sys.argv[1:])
    if rc is not None:
        sys.exit(rc)

from pipeline.cli import main  # noqa: E402

sys.exit(main())
