"""`python -m loramini`: the offline demo; `python -m loramini finetune --help` for the real thing."""

import sys

from .cli import main

sys.exit(main())
