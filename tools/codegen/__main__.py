"""`python3 -m redshank.tools.codegen [--spec-dir DIR] [--out DIR]`."""

import sys

from redshank.tools.codegen.generate import main

sys.exit(main(sys.argv[1:]))
