"""`python -m streamscribe`: the same as the `streamscribe` command."""

import sys

from streamscribe.cli import main

sys.exit(main())
