"""`python -m mmneuro` is the `mmneuro` command (used by the workflow, whatever PATH holds)."""

import sys

from mmneuro.cli import main

sys.exit(main())
