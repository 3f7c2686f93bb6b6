"""`python -m fsgateway` is the `fsgateway` command."""

import sys

from fsgateway.mount.cli import main

sys.exit(main())
