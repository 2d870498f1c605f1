"""`python -m retraining_standins serve|demo`, the same as the `retraining-standins` script."""

import sys

from retraining_standins.cli import main

sys.exit(main())
