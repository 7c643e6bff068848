import sys

from tsad.cli import main

sys.exit(main())
