"""``python -m medtorch`` (and ``torchrun ... -m medtorch train RECIPE``) runs the CLI."""

import sys

from medtorch.cli import main

sys.exit(main())
