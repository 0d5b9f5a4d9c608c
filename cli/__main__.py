"""`python -m cli ...`: the same as `crawlgraph ...`."""

import sys

from cli.main import main

sys.exit(main())
