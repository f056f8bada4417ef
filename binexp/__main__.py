import sys

from binexp.cli import main

sys.exit(main())
