"""`python -m config.serving`: the production profile (see config/serving/serve.py)."""

import sys

from config.serving.serve import main

sys.exit(main())
