"""`python -m fsgateway` is the `fsgateway` command."""

import sys

from .cli import main

sys.exit(main())
