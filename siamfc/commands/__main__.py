"""``python -m siamfc.commands`` is the ``fdsiamfc`` command."""
from . import main

main()
